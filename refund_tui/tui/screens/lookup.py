"""The home screen: find a payment, see what can still be refunded and why not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from refund_tui.core.models import PaymentStatus, ProviderName, Refund
from refund_tui.core.text import printable
from refund_tui.tui import keys
from refund_tui.tui.messages import describe_error
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.status import status_text

if TYPE_CHECKING:
    from refund_tui.core.service import PaymentView


def when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def time_left(closes: datetime, now: datetime) -> str:
    left = closes - now
    days, seconds = left.days, left.seconds
    if days:
        return f"{days}d {seconds // 3600}h left"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m left"


def payment_panel(view: PaymentView, now: datetime) -> Group:
    """Everything about one payment an operator needs before refunding it."""
    payment = view.payment
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    facts.add_row("Payment", Text(f"{printable(payment.reference)}  ({payment.provider.value.title()})"))
    facts.add_row("Status", _payment_status(payment.status))
    facts.add_row("Amount", payment.amount.format())
    facts.add_row("Date", when(payment.created_at))
    facts.add_row("Customer", Text(printable(f"{payment.customer_name}  {payment.customer_phone}")))
    balance = Text(view.refundable.format(), style="bold")
    if view.in_flight.minor:
        balance.append(f"  ({view.in_flight} in flight, not yet on the payment)", style="")
    facts.add_row("Refundable", balance)
    facts.add_row("Window", _window(view, now))
    parts: list = [facts, Text(""), _refunds(payment.refunds), Text("")]
    if view.blockers:
        verdict = Text("CANNOT REFUND", style="bold reverse")
        for blocker in view.blockers:
            verdict.append(f"\n  - {blocker}", style="bold")
        parts.append(verdict)
    else:
        parts.append(Text.assemble(("CAN REFUND", "bold"), f" up to {view.refundable}"))
    return Group(*parts)


def _payment_status(status: PaymentStatus) -> Text:
    if status is PaymentStatus.SUCCESSFUL:
        return Text("successful", style="green")
    return Text(status.value.upper(), style="bold yellow")


def _window(view: PaymentView, now: datetime) -> Text:
    closes = view.window_closes
    if closes is None:
        return Text("no refund window")
    if closes <= now:
        return Text(f"CLOSED on {when(closes)}", style="bold")
    return Text(f"closes {when(closes)} ({time_left(closes, now)})")


def _refunds(refunds: tuple[Refund, ...]) -> Table | Text:
    if not refunds:
        return Text("No refunds so far.")
    table = Table(title="Refunds so far", title_justify="left", box=None, padding=(0, 1))
    for column in ("Reference", "Amount", "Status", "Date", "Reason"):
        table.add_column(column, no_wrap=column != "Reason")
    for refund in refunds:
        table.add_row(
            Text(printable(refund.reference)),
            refund.amount.format(),
            status_text(refund.status),
            f"{refund.created_at.astimezone(UTC):%Y-%m-%d}" if refund.created_at else "-",
            Text(printable(refund.failure_reason or refund.reason)),
        )
    return table


class LookupScreen(Screen[None]):
    """Provider + payment reference -> the payment panel; `r` refunds the payment shown."""

    BINDINGS = keys.bindings("lookup")

    def __init__(self) -> None:
        super().__init__()
        self.view: PaymentView | None = None

    def compose(self) -> ComposeResult:
        yield Banner()
        with Horizontal(id="lookup-bar"):
            yield Label("Provider", classes="field-label")
            yield Select(
                [(name.value.title(), name) for name in ProviderName],
                value=ProviderName.VESICASH,
                allow_blank=False,
                compact=True,
                id="provider",
            )
            yield Label("Reference", classes="field-label")
            yield Input(placeholder="payment reference, then enter", compact=True, id="reference")
        yield Static(
            "Type a payment reference, then enter. esc leaves the field; / returns to it.",
            markup=False,
            id="lookup-message",
        )
        with VerticalScroll(id="payment", can_focus=True):
            yield Static(id="payment-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#reference", Input).focus()
        self.watch(self.app, "session_problem", self._session_failed, init=False)

    def _session_failed(self, problem: str | None) -> None:
        if problem:
            self._say(f"Cannot open the profile: {problem}\nk shows the credentials.", error=True)

    # -- looking up -------------------------------------------------------------------------

    @on(Input.Submitted, "#reference")
    def _submitted(self) -> None:
        self.look_up()

    def look_up(self) -> None:
        """Start a lookup of the provider and reference in the fields."""
        reference = self.query_one("#reference", Input).value.strip()
        if not reference:
            self._say("Type a payment reference first.", error=True)
            return
        if problem := self.app.session_problem:
            self._say(f"Cannot look up: the profile did not open: {problem}", error=True)
            return
        if self.app.session is None:
            self._say(f"Not ready: {self.app.banner_info.note} Try again in a moment.", error=True)
            return
        provider = self.query_one("#provider", Select).value
        self._say(f"Looking up {reference} at {provider.value.title()}...")
        self._fetch(provider, reference, operator_asked=True)

    @work(exclusive=True, exit_on_error=False, group="lookup", name="lookup")
    async def _fetch(
        self, provider: ProviderName, reference: str, operator_asked: bool = False
    ) -> tuple[PaymentView, bool]:
        return await self.app.service.lookup(provider, reference), operator_asked

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "lookup":
            return
        if event.state is WorkerState.SUCCESS:
            view, operator_asked = event.worker.result
            self._show(view, take_focus=operator_asked)
        elif event.state is WorkerState.ERROR:
            self._show(None)
            self._say(describe_error(event.worker.error), error=True)

    def _show(self, view: PaymentView | None, *, take_focus: bool = False) -> None:
        """Show a payment; only a lookup the operator asked for moves the cursor."""
        self.view = view
        panel = self.query_one("#payment-panel", Static)
        if view is None:
            panel.update("")
            return
        panel.update(payment_panel(view, self.app.clock()))
        count = len(view.payment.refunds)
        self._say(f"{view.payment.reference}: {count} refund{'' if count == 1 else 's'} so far.")
        if take_focus:
            self.query_one("#payment", VerticalScroll).focus()

    def _say(self, text: str, *, error: bool = False) -> None:
        message = self.query_one("#lookup-message", Static)
        message.update(text)
        message.set_class(error, "-error")

    def on_screen_resume(self) -> None:
        """Coming back (after a refund, from the board): show the payment as it is now."""
        if self.view is not None and self.app.session is not None:
            self._fetch(self.view.payment.provider, self.view.payment.reference)

    # -- actions ----------------------------------------------------------------------------

    def action_refund(self) -> None:
        typed = self.query_one("#reference", Input).value.strip()
        if self.view is None:
            self._say("Look up a payment first, then refund it.", error=True)
            self.query_one("#reference", Input).focus()
        elif typed != self.view.payment.reference:
            self._say(
                f"The reference field says {typed or 'nothing'} but the payment shown is "
                f"{self.view.payment.reference}: press enter in the field to look it up first.",
                error=True,
            )
        elif self.view.blockers:
            self._say("Cannot refund: " + "; ".join(self.view.blockers), error=True)
        else:
            self.app.open_refund(self.view)

    def action_focus_reference(self) -> None:
        self.query_one("#reference", Input).focus()

    def action_next_provider(self) -> None:
        select = self.query_one("#provider", Select)
        names = list(ProviderName)
        select.value = names[(names.index(select.value) + 1) % len(names)]

    def action_leave_reference(self) -> None:
        self.query_one("#payment", VerticalScroll).focus()
