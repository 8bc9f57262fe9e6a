"""Every key of the console, by where it works, straight from the key registry."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from refund_tui.tui import keys
from refund_tui.tui.widgets.banner import Banner

INTRO = (
    "Keys by scope (your [keys] overrides from config.toml are shown). ctrl+p opens the "
    "command palette; ctrl+c only copies, ctrl+q quits. Ids are what [keys] maps, e.g. "
    '"lookup.refund" = "x".'
)


class HelpScreen(Screen[None]):
    """The key reference; esc goes back."""

    BINDINGS = keys.bindings("help")

    def compose(self) -> ComposeResult:
        yield Banner()
        with VerticalScroll(id="help", can_focus=True):
            yield Static(self._reference(), id="help-keys")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help").focus()

    def _reference(self) -> Group:
        parts: list = [Text(INTRO)]
        for scope, scoped in keys.registry().items():
            table = Table(
                title=keys.SCOPE_TITLES[scope], title_justify="left", title_style="bold",
                box=None, padding=(0, 1), show_header=False, expand=True,
            )  # fmt: skip
            table.add_column("Key", style="bold", width=7, no_wrap=True)
            table.add_column("Action", ratio=1)
            table.add_column("Id", style="dim", width=19, no_wrap=True)
            for binding in scoped:
                table.add_row(self.app.key_for(binding), binding.tooltip, binding.id)
            parts += [Text(""), table]
        return Group(*parts)

    def action_back(self) -> None:
        self.dismiss()
