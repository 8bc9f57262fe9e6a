"""The last look before money moves: every fact restated, the amount typed back to confirm.

On a live profile a bare enter never sends: enter in the amount field only moves to the
send button, which must then be pressed on purpose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState

from refund_tui.core.models import RefundStatus
from refund_tui.core.text import printable, printable_lines
from refund_tui.core.validation import amount_confirmed
from refund_tui.tui import keys
from refund_tui.tui.messages import RefundSubmitted, describe_error
from refund_tui.tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from refund_tui.core.ledger import Attempt
    from refund_tui.core.money import Money
    from refund_tui.core.service import PreparedRefund


def outcome(attempt: Attempt) -> tuple[str, str]:
    """(message, severity) telling the operator what happened to a sent refund."""
    provider = attempt.provider.value.title()
    if attempt.status is RefundStatus.AWAITING_APPROVAL:
        return (
            f"Awaiting approval: {attempt.amount} is over the team's threshold. Recorded and held, "
            "nothing sent: another approver sends it from their approvals queue (A).",
            "warning",
        )
    if attempt.status is RefundStatus.FAILED:
        why = attempt.failure_reason or attempt.raw_message or "no reason given"
        return f"{provider} refused the refund: {why}. Nothing was paid.", "error"
    if attempt.status is RefundStatus.UNKNOWN:
        return (
            f"Outcome unknown: {provider} did not answer clearly. The refund will be resolved "
            "by asking the provider, never resent with a new key. Do not refund this payment "
            "again; watch it on the board.",
            "warning",
        )
    return (
        f"Refund submitted: {attempt.amount} to {attempt.phone}, {provider} reference "
        f"{attempt.provider_reference} ({attempt.status.value}).",
        "information",
    )


def not_sent(error: BaseException | None) -> str:
    """Why submit stopped before sending, or a warning when that is not certain."""
    from refund_tui.core.ledger import ApprovalRefused, CapExceeded
    from refund_tui.core.models import ProviderError
    from refund_tui.core.service import RefundNotAllowed, TrailLost

    text = describe_error(error)
    if isinstance(error, (ApprovalRefused, CapExceeded, ProviderError, RefundNotAllowed)):
        return f"Nothing was sent: {text}"
    if isinstance(error, TrailLost):  # the only record of this refund is what is shown here
        request = "\n".join(f"  {key}: {value}" for key, value in error.request_record().items())
        return f"{text}\n{printable_lines(request)}"
    return f"{text}. The refund may have been recorded: check the board before trying again."


class ConfirmScreen(ModalScreen[None]):
    """Restates the refund; the operator types the amount; then one submit."""

    BINDINGS = keys.bindings("confirm")
    #: What esc does, shown beside the send button.
    BACK_HINT = "esc: back to the form"

    def __init__(self, prepared: PreparedRefund, *, live: bool) -> None:
        super().__init__(classes="-live" if live else "-sandbox")
        self.prepared = prepared
        self.live = live
        self.sending = False

    @property
    def amount(self) -> Money:
        """What the operator must type back."""
        return self.prepared.draft.amount

    @property
    def expected(self) -> str:
        return self.amount.plain()

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(self._title(), id="confirm-title")
            yield Static(self._facts(), id="confirm-facts")
            with Horizontal(classes="form-row"):
                yield Label(f"Type {self.expected} to confirm", classes="confirm-label")
                yield Input(placeholder="amount", compact=True, id="typed")
            with Horizontal(id="confirm-actions"):
                yield Button(
                    self._send_label(), variant="error", compact=True, disabled=True, id="send"
                )
                yield Static(self.BACK_HINT, markup=False, id="confirm-status")
        yield KeyFooter()

    def _title(self) -> Text:
        if self.live:
            return Text(" LIVE REFUND: real money will move ", style="bold reverse red")
        return Text(" SANDBOX refund: simulated, no real money ", style="bold")

    def _send_label(self) -> str:
        return "Send LIVE refund" if self.live else "Send refund"

    def _facts(self) -> Table:
        prepared, draft = self.prepared, self.prepared.draft
        payment = draft.payment
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column()
        environment = "LIVE" if self.live else "SANDBOX"
        facts.add_row("Provider", f"{payment.provider.value.title()} ({environment})")
        facts.add_row("Payment", Text(f"{printable(payment.reference)}  ({payment.amount})"))
        facts.add_row("Customer", Text(printable(payment.customer_name)))
        carrier = f"  {prepared.phone.carrier}" if prepared.phone.carrier else ""
        facts.add_row("Phone", f"{prepared.phone.display}{carrier}")
        if prepared.to_another_wallet:
            payer = Text(f"NOT the payer's number ({payment.customer_phone})", style="bold reverse")
            facts.add_row("", payer)
        if draft.country_id:
            facts.add_row("Country", f"{prepared.phone.region} (provider id {draft.country_id})")
        facts.add_row("Amount", Text(draft.amount.format(), style="bold"))
        facts.add_row("Balance after", prepared.balance_after.format())
        facts.add_row("Reason", Text(printable(draft.reason)))
        if draft.webhook_url:
            facts.add_row("Webhook", Text(printable(draft.webhook_url)))
        if prepared.retry_of:
            facts.add_row("Retry of", prepared.retry_of)
        return facts

    def on_mount(self) -> None:
        self.query_one("#typed", Input).focus()

    @on(Input.Changed, "#typed")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#send", Button).disabled = not self._matches() or self.sending

    def _matches(self) -> bool:
        return amount_confirmed(self.query_one("#typed", Input).value, self.amount)

    @on(Input.Submitted, "#typed")
    def _entered(self) -> None:
        if not self._matches():
            self._say(f"Type the amount ({self.expected}) to confirm.", error=True)
        elif self.live:
            self.query_one("#send", Button).focus()
            self._say("LIVE: press enter on the button to send.", error=True)
        else:
            self.send()

    @on(Button.Pressed, "#send")
    def _pressed(self) -> None:
        if self._matches():
            self.send()

    def send(self) -> None:
        """Submit once; every control is disabled until the outcome is known."""
        if self.sending:
            return
        if blocked := self.app.refund_blocked():
            self._say(blocked, error=True)
            return
        self.sending = True
        self.query_one("#typed", Input).disabled = True
        self.query_one("#send", Button).disabled = True
        self._say("Sending... (keep the console open)")
        self._submit()

    @work(exclusive=True, exit_on_error=False, group="submit", name="submit")
    async def _submit(self) -> Attempt:
        return await self._send_now()

    async def _send_now(self) -> Attempt:
        return await self.app.service.submit(self.prepared)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "submit":
            return
        if event.state is WorkerState.SUCCESS:
            attempt = event.worker.result
            message, severity = outcome(attempt)
            self.notify(message, title="Refund", severity=severity, timeout=10, markup=False)
            self.post_message(RefundSubmitted(attempt.attempt_id))
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.sending = False
            self._say(not_sent(event.worker.error), error=True)
            self.query_one("#send", Button).disabled = True

    def _say(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#confirm-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    def action_cancel(self) -> None:
        if self.sending:
            self.notify("The refund is being sent; wait for the outcome.", severity="warning")
            return
        self.dismiss()
