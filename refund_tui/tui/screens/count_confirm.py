"""A typed count before many refunds are sent or resolved at once (batch, bulk triage)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from refund_tui.core.money import Money
from refund_tui.tui.keys import bindings
from refund_tui.tui.widgets.footer import KeyFooter


class CountConfirmScreen(ModalScreen[bool]):
    """What is about to happen restated; the operator types the count to go ahead."""

    BINDINGS = bindings("confirm")
    DEFAULT_CSS = """
    CountConfirmScreen { align: center middle; }
    CountConfirmScreen #bulk-box { width: 76; height: auto; border: thick $warning; padding: 0 1; }
    CountConfirmScreen #bulk-error { color: $error; }
    """

    def __init__(self, summary: str, count: int) -> None:
        super().__init__()
        self.summary = summary
        self.count = count

    def compose(self) -> ComposeResult:
        with Vertical(id="bulk-box"):
            yield Static(
                f"{self.summary}\nType {self.count} and press enter to go ahead (esc: nothing is done).",
                markup=False, id="bulk-summary",
            )  # fmt: skip
            yield Input(placeholder=f"type {self.count}", compact=True, id="bulk-count")
            yield Static("", markup=False, id="bulk-error")
        yield KeyFooter()

    @on(Input.Submitted, "#bulk-count")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip() == str(self.count):
            self.dismiss(True)
        else:
            self.query_one("#bulk-error", Static).update(f"type exactly {self.count} to go ahead")

    def action_cancel(self) -> None:
        self.dismiss(False)


def money_totals(totals_by_currency: dict[str, Money]) -> str:
    """"150.50 GHS, 2,000 XOF" (or "nothing")."""
    return ", ".join(money.format() for money in totals_by_currency.values()) or "nothing"
