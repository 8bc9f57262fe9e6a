"""An operator's decision to resend a keyless (Vesicash) request of unknown outcome.

refund-tui never resends such a request by itself. This screen shows the evidence read just
now - when the request left, when the payment record was read and what it showed - and,
only once the quiet period has passed with no refund from it on the record, lets the
operator type the amount back to resend it. The same typed confirmation as a new refund.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.screen import ModalScreen
from textual.widgets import Input

from refund_tui.core.text import printable
from refund_tui.tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from refund_tui.core.ledger import Attempt
    from refund_tui.core.money import Money
    from refund_tui.core.service import ResendEvidence


class ResendScreen(ConfirmScreen):
    """The evidence, then the typed amount; refused evidence leaves nothing to type."""

    BACK_HINT = "esc: back to the refund, nothing sent"

    def __init__(self, evidence: ResendEvidence, *, live: bool) -> None:
        ModalScreen.__init__(self, classes="-live" if live else "-sandbox")
        self.evidence = evidence
        self.live = live
        self.sending = False

    @property
    def amount(self) -> Money:
        return self.evidence.attempt.amount

    def _title(self) -> Text:
        return Text(" RESEND: if the first request still executes, the customer is paid twice ", style="bold reverse red")

    def _send_label(self) -> str:
        return "Resend LIVE refund" if self.live else "Resend refund"

    def _facts(self) -> Table:
        attempt = self.evidence.attempt
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column(overflow="fold")
        rows = [
            ("Refund", f"{attempt.attempt_id[:8]}  {attempt.provider.value.title()}"),
            ("Payment", attempt.payment_reference),
            ("Amount", attempt.amount.format()),
            ("Phone", attempt.phone),
            ("Tag", attempt.request.external_reference),
            *self.evidence.facts(),
        ]
        for label, value in rows:  # Text: a value is never read as markup
            facts.add_row(label, Text(printable(value)))
        return facts

    def on_mount(self) -> None:
        typed = self.query_one("#typed", Input)
        if self.evidence.refusal is not None:
            typed.disabled = True
            self._say(f"Not offered: {self.evidence.refusal}. esc: back", error=True)
        else:
            typed.focus()

    async def _send_now(self) -> Attempt:
        return await self.app.service.resend(self.evidence.attempt.attempt_id)
