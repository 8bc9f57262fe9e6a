"""The home screen: find a payment, see what can still be refunded and why not.

Until a payment is shown it lists what an operator starts from (``widgets.home``): the
refunds that need attention, the payments looked up or refunded recently and, on the sandbox
profile, the demo payments. Enter on a line looks its payment up, or opens its refund.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, OptionList, Static
from textual.worker import Worker, WorkerState

from refund_tui.core.models import ErrorCode, PaymentStatus, ProviderError, ProviderName, Refund
from refund_tui.core.text import printable
from refund_tui.tui import keys
from refund_tui.tui.messages import LedgerChanged, describe_error
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.fields import FieldSelect, ReferenceField
from refund_tui.tui.widgets.footer import KeyFooter
from refund_tui.tui.widgets.home import (
    RECENT_LIMIT,
    HomeData,
    HomeList,
    PaymentRef,
    Recent,
    near_matches,
    other_provider,
    read_home,
)
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


#: How often the lists are read again while nothing changes (ages grow, refunds get stuck).
HOME_REFRESH = 30.0
WELCOME = "Type a payment reference and enter, or pick a line below (down). ?: help"


def suggestions(
    reference: str, tried: ProviderName, known: list[PaymentRef]
) -> list[tuple[PaymentRef, str]]:
    """What to offer after ``reference`` was not found at ``tried``: the other provider when
    the reference has its shape, then known payments with a close reference."""
    offered: list[tuple[PaymentRef, str]] = []
    if (other := other_provider(reference, tried)) is not None:
        offered.append((PaymentRef(other, reference), f"looks like a {other.value.title()} reference"))
    for payment in near_matches(reference, known):
        if payment != PaymentRef(tried, reference) and payment not in dict(offered):
            offered.append((payment, "a close reference in the ledger or the demo"))
    return offered


class LookupScreen(Screen[None]):
    """Provider + payment reference -> the payment panel; `r` refunds the payment shown."""

    BINDINGS = keys.bindings("lookup")
    AUTO_FOCUS = "#reference"

    def __init__(self) -> None:
        super().__init__()
        self.view: PaymentView | None = None
        #: Payments looked up in this run (in memory only: see ``widgets.home``).
        self.looked_up: deque[Recent] = deque(maxlen=RECENT_LIMIT)
        self.home: HomeData | None = None
        self.offered: list[tuple[PaymentRef, str]] = []
        #: A lookup asked for before the providers were connected: run once they are.
        self._pending: tuple[ProviderName, str] | None = None

    def compose(self) -> ComposeResult:
        yield Banner()
        with Horizontal(id="lookup-bar"):
            yield Label("Provider", classes="field-label")
            yield FieldSelect(
                [(name.value.title(), name) for name in ProviderName],
                value=ProviderName.VESICASH,
                allow_blank=False,
                compact=True,
                id="provider",
            )
            yield Label("Reference", classes="field-label")
            yield ReferenceField(placeholder="payment reference, then enter", compact=True, id="reference")
        yield Static(WELCOME, markup=False, id="lookup-message")
        yield HomeList()
        with VerticalScroll(id="payment", can_focus=True):
            yield Static(id="payment-panel")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#reference", ReferenceField).focus()
        self.watch(self.app, "session_problem", self._session_failed, init=False)
        self.watch(self.app, "connected", self._connected, init=True)
        self.set_interval(HOME_REFRESH, self.load_home)

    def _session_failed(self, problem: str | None) -> None:
        if problem:
            self._say(f"Cannot open the profile: {problem}\nk shows the credentials.", error=True)

    def _connected(self, connected: bool) -> None:
        if not connected:
            return
        self.load_home()
        if self._pending is not None:
            provider, reference = self._pending
            self._pending = None
            self._say(f"Looking up {reference} at {provider.value.title()}...")
            self._fetch(provider, reference, operator_asked=True)

    # -- the lists ------------------------------------------------------------------------

    def load_home(self) -> None:
        """Read the lists again (in a thread) unless a payment is on screen."""
        if self.app.connected and self.view is None:
            self._read_home()

    @work(thread=True, exclusive=True, exit_on_error=False, group="home", name="home")
    def _read_home(self) -> HomeData:
        session = self.app.session
        return read_home(
            session.ledger,
            session.profile.usual_settle,
            list(self.looked_up),
            self.app.clock(),
            with_demos=session.profile.uses_simulator,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="suggest", name="suggest")
    def _suggest(self, provider: ProviderName, reference: str) -> list[tuple[PaymentRef, str]]:
        known = [PaymentRef(*payment) for payment in self.app.session.ledger.payments()]
        known += [recent.payment for recent in self.looked_up]
        known += [demo.payment for demo in (self.home.demos if self.home else [])]
        return suggestions(reference, provider, known)

    @on(OptionList.OptionSelected, "#home")
    def _picked(self) -> None:
        target = self.query_one(HomeList).target()
        if isinstance(target, PaymentRef):
            self.query_one("#provider", FieldSelect).value = target.provider
            self.query_one("#reference", ReferenceField).value = target.reference
            self.look_up()
        elif target is not None:
            from refund_tui.tui.screens.details import DetailsScreen

            self.app.push_screen(DetailsScreen(target))

    @on(LedgerChanged)
    def _ledger_changed(self) -> None:
        self.load_home()

    def show_home(self) -> None:
        """Back to the lists, the reference field empty and focused."""
        self._show(None)
        self.offered = []
        self.query_one("#reference", ReferenceField).value = ""
        self.query_one("#reference", ReferenceField).focus()
        self._say(WELCOME)
        self.load_home()

    # -- looking up -------------------------------------------------------------------------

    @on(ReferenceField.Submitted, "#reference")
    def _submitted(self) -> None:
        self.look_up()

    @on(ReferenceField.Changed, "#reference")
    def _typed(self) -> None:
        self.refresh_bindings()  # the footer: "? Help" only while the field is empty

    def look_up(self) -> None:
        """Start a lookup of the provider and reference in the fields."""
        reference = self.query_one("#reference", ReferenceField).value.strip()
        if not reference:
            self._say("Type a payment reference first, or pick a line below.", error=True)
            return
        if problem := self.app.session_problem:
            self._say(f"Cannot look up: the profile did not open: {problem}", error=True)
            return
        provider = self.query_one("#provider", FieldSelect).value
        if not self.app.connected:
            self._pending = (provider, reference)
            self._say(f"Connecting to the providers: {reference} is looked up as soon as they answer.")
            return
        self._say(f"Looking up {reference} at {provider.value.title()}...")
        self._fetch(provider, reference, operator_asked=True)

    @work(exclusive=True, exit_on_error=False, group="lookup", name="lookup")
    async def _fetch(
        self, provider: ProviderName, reference: str, operator_asked: bool = False
    ) -> tuple[PaymentView, bool]:
        return await self.app.service.lookup(provider, reference), operator_asked

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        name, state = event.worker.name, event.state
        if state is WorkerState.SUCCESS and name == "home":
            self.home = event.worker.result
            self.query_one(HomeList).show(self.home, self.offered)
        elif state is WorkerState.SUCCESS and name == "suggest":
            self.offered = event.worker.result
            if self.home is not None:
                self.query_one(HomeList).show(self.home, self.offered)
        elif name == "lookup" and state is WorkerState.SUCCESS:
            view, operator_asked = event.worker.result
            payment = view.payment
            self.looked_up.append(Recent(PaymentRef(payment.provider, payment.reference), "looked up", self.app.clock()))
            self._show(view, take_focus=operator_asked)
        elif name == "lookup" and state is WorkerState.ERROR:
            self._show(None)
            self._missed(event.worker.error)
        elif state is WorkerState.ERROR and name in ("home", "suggest"):
            self.notify(f"Could not read the ledger: {describe_error(event.worker.error)}", severity="error", markup=False)

    def _missed(self, error: BaseException | None) -> None:
        """Say why the lookup failed; after a not-found, offer what the operator may have meant."""
        self._say(describe_error(error), error=True)
        if isinstance(error, ProviderError) and error.code is ErrorCode.PAYMENT_NOT_FOUND:
            reference = self.query_one("#reference", ReferenceField).value.strip()
            provider = self.query_one("#provider", FieldSelect).value
            self._say(f"{describe_error(error)}\nSuggestions, if any, are at the top of the list (down, enter).", error=True)
            self._suggest(provider, reference)
        self.load_home()

    def _show(self, view: PaymentView | None, *, take_focus: bool = False) -> None:
        """Show a payment (None: the lists); only a lookup the operator asked for moves the cursor."""
        self.view = view
        self.set_class(view is not None, "-payment")
        panel = self.query_one("#payment-panel", Static)
        if view is None:
            panel.update("")
            return
        panel.update(payment_panel(view, self.app.clock()))
        count = len(view.payment.refunds)
        self._say(
            f"{printable(view.payment.reference)}: {count} refund{'' if count == 1 else 's'} so far. "
            "r refunds it; l goes back to the lists."
        )
        if take_focus:
            self.query_one("#payment", VerticalScroll).focus()

    def _say(self, text: str, *, error: bool = False) -> None:
        message = self.query_one("#lookup-message", Static)
        message.update(text)
        message.set_class(error, "-error")

    def on_screen_resume(self) -> None:
        """Coming back (after a refund, from the board): show the payment as it is now."""
        if self.view is not None and self.app.connected:
            self._fetch(self.view.payment.provider, self.view.payment.reference)
        else:
            self.load_home()

    # -- actions ----------------------------------------------------------------------------

    def action_refund(self) -> None:
        typed = self.query_one("#reference", ReferenceField).value.strip()
        if self.view is None:
            self._say("Look up a payment first, then refund it.", error=True)
            self.query_one("#reference", ReferenceField).focus()
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

    # Focus moves at once (``set_focus``), not after the keys already queued (``focus()``):
    # keys sent in one burst over SSH then land where the operator meant them.

    def action_focus_reference(self) -> None:
        self.set_focus(self.query_one("#reference", ReferenceField))

    def action_focus_list(self) -> None:
        self.set_focus(self.query_one(HomeList if self.view is None else "#payment"))

    def action_next_provider(self) -> None:
        select = self.query_one("#provider", FieldSelect)
        names = list(ProviderName)
        select.value = names[(names.index(select.value) + 1) % len(names)]

    def action_leave_reference(self) -> None:
        self.action_focus_list()
