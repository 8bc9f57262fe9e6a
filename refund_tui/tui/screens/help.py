"""Every key of the console, by where it works, straight from the key registry."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from refund_tui.config import SANDBOX_PROFILE
from refund_tui.tui import keys
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.footer import KeyFooter

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
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#help").focus()

    def _reference(self) -> Group:
        parts: list = [Text(INTRO)]
        if self.app.banner_info.profile == SANDBOX_PROFILE:
            parts += [Text(""), sandbox_section()]
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


def sandbox_section() -> Group:
    """What the built-in simulator is and how to make it show each case."""
    from refund_tui.sandbox.settlement import MAGIC_ENDINGS

    endings = Table(box=None, padding=(0, 1), show_header=False)
    endings.add_column("Ending", style="bold", width=7, no_wrap=True)
    endings.add_column("Outcome")
    for ending, scenario in MAGIC_ENDINGS.items():
        outcome = scenario.final.value
        if scenario.failure_reason:
            outcome += f": {scenario.failure_reason}"
        if scenario.reversed_after_units:
            outcome += ", then reversed"
        if scenario.final.value == "processing":
            outcome = "stays processing (stuck)"
        endings.add_row(ending, outcome)
    endings.add_row("other", "completed")
    return Group(
        Text("Sandbox", style="bold"),
        Text(
            "This profile talks to the built-in simulator: no real money moves, the keys are "
            "fake. The first screen (l) lists its demo payments and what each shows; enter "
            "looks one up. A refund's outcome follows the last four digits of the phone it "
            "goes to:"
        ),
        endings,
        Text(
            "Delete sandbox-state.json in the data directory to start the demo afresh; "
            "docs/SANDBOX.md describes every payment."
        ),
    )
