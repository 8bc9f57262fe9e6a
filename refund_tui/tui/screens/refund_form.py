"""The refund form: amount, destination, reason; checked on every keystroke by the service.

The service's ``prepare`` is the only judge: each change re-runs it and its per-field
problems are shown next to the fields; the form can go to confirmation only when it passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from refund_tui.core.text import printable
from refund_tui.core.validation import COMMON_REASONS, REASON_MAX_LENGTH, RefundInvalid
from refund_tui.tui import keys
from refund_tui.tui.messages import describe_error
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.fields import FieldSelect
from refund_tui.tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from refund_tui.core.ledger import Attempt
    from refund_tui.core.models import Country
    from refund_tui.core.service import PaymentView, PreparedRefund

#: Form fields in the order ``RefundInvalid.problems`` may name them.
FIELDS = ("amount", "phone", "country", "reason", "webhook_url")


class RefundFormScreen(Screen[None]):
    """Enter a refund of one payment; ctrl+s (or Review) opens the confirmation."""

    BINDINGS = keys.bindings("refund")

    def __init__(self, view: PaymentView, *, retry_of: Attempt | None = None) -> None:
        super().__init__()
        self.view = view
        self.failed = retry_of
        self.retry_of = retry_of.attempt_id if retry_of else None
        self.countries: list[Country] = []
        self.countries_problem: str | None = None
        self.problems: dict[str, str] = {}

    @property
    def _routed(self) -> bool:
        """True when the refund body says where the money goes and whom to notify (Vesicash:
        phone, country, webhook); False when the provider pays the original wallet (Novasend)."""
        return self.app.service.provider(self.view.payment.provider).sends_phone

    def compose(self) -> ComposeResult:
        payment = self.view.payment
        amount = min(self.failed.amount, self.view.refundable) if self.failed else self.view.refundable
        yield Banner()
        title = (
            f"Refund {payment.reference} ({payment.provider.value.title()}) to "
            f"{payment.customer_name}: up to {self.view.refundable}"
        )
        if self.retry_of:
            title += f"\nRetry of failed refund {self.retry_of[:8]}: a new attempt with a new key"
        yield Static(title, markup=False, id="form-title")
        with Vertical(id="form"):
            with Horizontal(classes="form-row"):
                yield Label("Amount", classes="field-label")
                yield Input(amount.plain(), compact=True, id="amount")
                yield Label(payment.currency, classes="unit")
            yield Static(markup=False, classes="note", id="amount-note")
            with Horizontal(classes="form-row"):
                yield Label("Phone", classes="field-label")
                if self._routed:
                    phone = self.failed.phone if self.failed else payment.customer_phone
                    yield Input(phone, compact=True, id="phone")
                else:
                    yield Static(payment.customer_phone, markup=False, id="phone-fixed")
            yield Static(markup=False, classes="note", id="phone-note")
            if self._routed:
                with Horizontal(classes="form-row"):
                    yield Label("Country", classes="field-label")
                    yield FieldSelect([], prompt="loading countries...", compact=True, id="country")
                yield Static(markup=False, classes="note", id="country-note")
            with Horizontal(classes="form-row"):
                yield Label("Reason", classes="field-label")
                yield Input(
                    printable(self.failed.reason) if self.failed else "",
                    placeholder="why the customer is refunded",
                    compact=True,
                    id="reason",
                )
                yield FieldSelect(
                    [(reason, reason) for reason in COMMON_REASONS],
                    prompt="quick pick",
                    compact=True,
                    id="reason-pick",
                )
            yield Static(markup=False, classes="note", id="reason-note")
            if self._routed:
                with Horizontal(classes="form-row"):
                    yield Label("Webhook", classes="field-label")
                    yield Input(
                        placeholder="optional https://... URL", compact=True, id="webhook_url"
                    )
                yield Static(markup=False, classes="note", id="webhook_url-note")
            with Horizontal(id="form-actions"):
                yield Button("Review", variant="primary", compact=True, id="review")
                yield Static(markup=False, id="form-status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#amount", Input).focus()
        if self._routed:
            self._load_countries()
        self.prepare()

    # -- countries (Vesicash) ---------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="countries", name="countries")
    async def _load_countries(self) -> list[Country]:
        return await self.app.service.countries(self.view.payment.provider)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "countries":
            return
        select = self.query_one("#country", Select)
        if event.state is WorkerState.SUCCESS:
            self.countries = event.worker.result
            select.set_options((f"{c.name} ({c.iso_code})", c.id) for c in self.countries)
            select.prompt = "choose a country"
            default = next((c for c in self.countries if c.iso_code == self.view.country), None)
            if default is not None:
                select.value = default.id
        elif event.state is WorkerState.ERROR:
            select.prompt = "countries unavailable"
            problem = describe_error(event.worker.error)
            self.countries_problem = f"cannot load countries ({problem}): esc, then r again"
        self.prepare()

    def _country(self) -> Country | None:
        if not self._routed:
            return None
        chosen = self.query_one("#country", Select).value
        return next((c for c in self.countries if c.id == chosen), None)

    # -- validation -------------------------------------------------------------------------

    @on(Input.Changed)
    @on(Select.Changed, "#country")
    def _changed(self) -> None:
        self.prepare()

    @on(Select.Changed, "#reason-pick")
    def _picked(self, event: Select.Changed) -> None:
        """A quick-pick reason fills the reason field; the cursor goes on to the next field."""
        if event.value is Select.BLANK:
            return
        self.query_one("#reason", Input).value = str(event.value)
        chain = self.focus_chain
        pick = event.select
        if pick in chain and chain.index(pick) + 1 < len(chain):
            self.set_focus(chain[chain.index(pick) + 1])

    def _entries(self) -> dict:
        return {
            "amount": self.query_one("#amount", Input).value,
            "reason": self.query_one("#reason", Input).value,
            "phone": self.query_one("#phone", Input).value if self._routed else None,
            "country": self._country(),
            "webhook_url": self.query_one("#webhook_url", Input).value if self._routed else "",
            "retry_of": self.retry_of,
            "retry_checked": True,
        }

    def prepare(self) -> PreparedRefund | None:
        """Ask the service to validate the form; None (problems shown) when it refuses."""
        from refund_tui.core.service import RefundNotAllowed

        try:
            prepared = self.app.service.prepare(self.view, **self._entries())
        except RefundInvalid as invalid:
            self.problems = dict(invalid.problems)
            prepared = None
        except RefundNotAllowed as refused:
            self.problems = {"form": str(refused)}
            prepared = None
        else:
            self.problems = {}
        if self._routed and not self.countries and "country" not in self.problems:
            self.problems["country"] = self.countries_problem or "loading the countries..."
            prepared = None
        self._show_problems()
        return prepared

    def _show_problems(self) -> None:
        for field in FIELDS:
            notes = self.query(f"#{field}-note")
            if not notes:
                continue
            problem = self.problems.get(field)
            note = notes.first(Static)
            note.update(f"! {problem}" if problem else self._hint(field))
            note.set_class(problem is not None, "-error")
        ready = not self.problems
        self.query_one("#review", Button).disabled = not ready
        status = self.query_one("#form-status", Static)
        if ready:
            status.update("Ready: press ctrl+s or Review to confirm.")
        elif "form" in self.problems:
            status.update(f"Cannot refund: {self.problems['form']}")
        else:
            names = ", ".join(field.replace("_", " ") for field in self.problems)
            status.update(f"Cannot review yet: fix {names}.")
        status.set_class(not ready, "-error")

    def _hint(self, field: str) -> str:
        """What a valid field means, in words."""
        if field == "amount":
            return f"max {self.view.refundable}"
        if field == "phone":
            return self._phone_hint()
        if field == "country":
            country = self._country()
            return f"refund paid in {country.name}" if country else ""
        if field == "reason":
            reason = self.query_one("#reason", Input).value.strip()
            return f"{len(reason)}/{REASON_MAX_LENGTH} characters, kept in the ledger"
        return "optional: the provider notifies this HTTPS URL"

    def _phone_hint(self) -> str:
        from refund_tui.core.phone import PhoneError

        entries = self._entries()
        country = entries["country"]
        try:
            number = self.app.service.check_phone(
                self.view,
                entries["phone"] or self.view.payment.customer_phone,
                country.iso_code if country else None,
            )
        except PhoneError as error:
            return f"! {error}"
        hint = number.display
        if number.carrier:
            hint += f"  {number.carrier} (carrier hint: numbers can be ported)"
        if not self._routed:
            provider = self.view.payment.provider.value.title()
            hint += f"\n{provider} always refunds to the wallet that paid."
        return hint

    # -- going on ---------------------------------------------------------------------------

    @on(Button.Pressed, "#review")
    def _review_pressed(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        """Open the confirmation (with a fresh idempotency key) when the form is valid."""
        from refund_tui.tui.screens.confirm import ConfirmScreen

        prepared = self.prepare()
        if prepared is None:
            self.app.bell()
            return
        self.app.push_screen(ConfirmScreen(prepared, live=self.app.session.profile.is_live))

    def action_back(self) -> None:
        self.dismiss()
