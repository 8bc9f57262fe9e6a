"""RefundService: validate -> record intent -> send -> classify -> track -> recover.

The only path by which money moves. The rules that keep a customer from being refunded
twice live here, in ``outcomes`` and in the ledger:

- the attempt, with its key and exact body, is committed to the ledger before any byte is
  sent, inside the same transaction that checks the cap;
- what became of a request, and every resend, is settled by ``Outcomes`` (never a new key);
- a failed refund is retried (once) as a new attempt with a new key, linked to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from refund_tui.core.approvals import Decision
from refund_tui.core.ledger import (
    Attempt,
    BatchRow,
    Ledger,
    LedgerError,
    LedgerLost,
    NewAttempt,
    Operator,
    ThreadedLedger,
)
from refund_tui.core.models import (
    Country,
    ErrorCode,
    Payment,
    PaymentStatus,
    ProviderError,
    ProviderName,
    Refund,
    RefundStatus,
)
from refund_tui.core.money import Money, MoneyError
from refund_tui.core.notices import NoticeInbox
from refund_tui.core.outcomes import Outcomes
from refund_tui.core.phone import MobileNumber, PhoneError, country_name, region_of, validate_mobile
from refund_tui.core.provider import Provider, RefundDraft
from refund_tui.core.validation import RefundInvalid, check_amount, check_reason, check_webhook_url

#: What a payment reference may look like (anything else never reaches a provider's URL).
REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
#: Currency -> country, for payments whose customer phone does not tell.
CURRENCY_COUNTRY = {"GHS": "GH", "ZMW": "ZM", "NGN": "NG", "KES": "KE", "XOF": "CI", "XAF": "CM"}

#: Pauses before each immediate resolution of an attempt whose outcome is unknown.
RETRY_DELAYS = (0.5, 1.5)
MAX_POLL_DELAY = 60.0
#: How long a keyless (Vesicash) request must have shown no refund on the payment record
#: before an operator is offered to resend it.
RESEND_QUIET = timedelta(minutes=15)
#: How far this machine's clock may be from the provider's when an operator decides a resend.
MAX_CLOCK_SKEW = timedelta(minutes=2)
#: Completed refunds are re-read this long after they were made, so a reversal is seen...
RECHECK_COMPLETED = timedelta(days=2)
#: ...this often, once older than FRESH_COMPLETED; younger ones at every tracking tick, so a
#: reversal shows within one tracking interval.
COMPLETED_POLL_DELAY = 120.0
FRESH_COMPLETED = timedelta(days=1)


class RefundNotAllowed(Exception):
    """The refund cannot be made at all (read-only profile, payment not refundable)."""


class OutcomeUnknown(Exception):
    """Sending was interrupted after the intent was recorded: the refund may have left."""

    def __init__(self, attempt: Attempt, cause: BaseException) -> None:
        super().__init__(
            f"the refund {attempt.attempt_id[:8]} may have been sent ({cause}); "
            "run `refund-tui recover`: it is resolved by status, never resent with a new key"
        )
        self.attempt = attempt


class TrailLost(OutcomeUnknown):
    """The ledger file was deleted or replaced while the refund was sent: it may have been
    paid and is recorded nowhere. ``request_record`` is what to keep to trace it."""

    def __init__(self, attempt: Attempt, cause: LedgerLost) -> None:
        Exception.__init__(
            self,
            f"{cause}: refund {attempt.attempt_id[:8]} may have been paid and is recorded "
            "nowhere. Keep the request below to trace it with the provider; restore the ledger "
            "from a backup before any other refund",
        )
        self.attempt = attempt

    def request_record(self) -> dict[str, object]:
        """Everything needed to find this refund at the provider (no credentials)."""
        attempt = self.attempt
        return {
            "attempt_id": attempt.attempt_id,
            "recorded_at": attempt.created_at.isoformat(),
            "provider": attempt.provider.value,
            "payment_reference": attempt.payment_reference,
            "amount": attempt.amount.plain(),
            "currency": attempt.amount.currency,
            "phone": attempt.phone,
            "tag": attempt.request.external_reference,
            "idempotency_key": attempt.request.idempotency_key,
            "request": f"{attempt.request.method} {attempt.request.path}",
            "body": attempt.request.body,
        }


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PaymentView:
    """A payment plus everything the operator needs to decide on a refund."""

    payment: Payment
    refundable: Money
    in_flight: Money
    window_closes: datetime | None
    blockers: tuple[str, ...]
    country: str | None


@dataclass(frozen=True, slots=True)
class PreparedRefund:
    """A validated refund, ready for the operator's confirmation."""

    view: PaymentView
    draft: RefundDraft
    phone: MobileNumber
    retry_of: str | None
    #: The batch file row this refund comes from (recorded with the intent, sent once).
    batch_row: BatchRow | None = None

    @property
    def balance_after(self) -> Money:
        return self.view.refundable - self.draft.amount

    @property
    def to_another_wallet(self) -> bool:
        """True when the money goes to a number other than the one that paid."""
        return self.phone.e164 != self.view.payment.customer_phone


@dataclass(frozen=True, slots=True)
class ResendEvidence:
    """What an operator sees before deciding to resend a keyless request of unknown outcome.

    ``refusal`` says why a resend is not offered; None when it is.
    """

    attempt: Attempt
    first_sent_at: datetime
    last_sent_at: datetime
    quiet_until: datetime
    read_at: datetime | None
    refunds_on_record: int
    refusal: str | None

    def facts(self) -> list[tuple[str, str]]:
        """The evidence as (label, value) pairs."""
        tag = f"[{self.attempt.request.external_reference}]"
        facts = [("First request sent", f"{self.first_sent_at:%Y-%m-%d %H:%M:%S} UTC")]
        if self.last_sent_at != self.first_sent_at:
            facts.append(("Last request sent", f"{self.last_sent_at:%Y-%m-%d %H:%M:%S} UTC"))
        if self.read_at is None:
            facts.append(("Payment record", "could not be read just now"))
        else:
            facts.append((
                "Payment record",
                f"read {self.read_at:%Y-%m-%d %H:%M:%S} UTC: {self.refunds_on_record} "
                f"refund(s), none tagged {tag}",
            ))  # fmt: skip
        facts.append(("Resend offered", f"from {self.quiet_until:%Y-%m-%d %H:%M:%S} UTC"))
        return facts

    def lines(self) -> list[str]:
        """The evidence, one fact a line."""
        return [f"{label:<19} {value}" for label, value in self.facts()]


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    attempt: Attempt
    outcome: str


@dataclass
class _PollSchedule:
    """When each in-flight attempt is next due for a status poll."""

    due: dict[str, datetime] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)

    def is_due(self, attempt_id: str, now: datetime) -> bool:
        return self.due.get(attempt_id, now) <= now

    def after(
        self,
        attempt_id: str,
        now: datetime,
        changed: bool,
        retry_after: float | None,
        status: RefundStatus,
        age: timedelta,
    ) -> None:
        delay = 2.0 if changed else min(self.delay.get(attempt_id, 1.0) * 2, MAX_POLL_DELAY)
        if status is RefundStatus.COMPLETED:
            delay = 0.0 if age < FRESH_COMPLETED else COMPLETED_POLL_DELAY
        if retry_after is not None:
            delay = max(delay, retry_after)
        self.delay[attempt_id] = delay
        self.due[attempt_id] = now + timedelta(seconds=delay)


class RefundService:
    """Refunds for one profile: its ledger, its provider clients and its rules."""

    def __init__(
        self,
        ledger: Ledger,
        providers: Mapping[ProviderName, Provider],
        *,
        profile: str,
        environment: str,
        refunds_enabled: bool,
        operator: Operator | None = None,
        flag_after: timedelta = timedelta(hours=24),
        resend_quiet: timedelta = RESEND_QUIET,
        concurrency: int = 8,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.ledger = ledger
        #: The same ledger for this class's coroutines: called in threads, never on the loop.
        self.db = ThreadedLedger(ledger)
        self.providers = dict(providers)
        self.profile = profile
        self.environment = environment
        self.refunds_enabled = refunds_enabled
        self.operator = operator or Operator.current()
        self.flag_after = flag_after
        self.resend_quiet = resend_quiet
        self.concurrency = concurrency
        self.retry_delays = retry_delays
        self.clock = clock
        self._countries: dict[ProviderName, list[Country]] = {}
        self._in_flight: set[str] = set()
        self._schedule = _PollSchedule()
        self.outcomes = Outcomes(ledger, self.provider)

    def provider(self, name: ProviderName) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise ProviderError(
                ErrorCode.REJECTED,
                f"{name.value.title()} is not configured for profile '{self.profile}'",
                provider=name,
            ) from None

    # -- looking up -------------------------------------------------------------------

    async def lookup(self, provider: ProviderName, reference: str) -> PaymentView:
        """Fetch a payment and work out how much of it can still be refunded, and why not."""
        reference = reference.strip()
        if not REFERENCE.fullmatch(reference):
            message = (
                f"{reference!r} is not a payment reference (letters, digits, - _ . : only)"
                if reference
                else "enter a payment reference"
            )
            raise ProviderError(ErrorCode.PAYMENT_NOT_FOUND, message, provider=provider)
        payment = await self.provider(provider).get_payment(reference)
        return await self.view(payment)

    async def view(self, payment: Payment) -> PaymentView:
        """Refundable balance (the stricter of the provider's and the ledger's view) and
        blockers; the ledger learns any status the provider now reports differently."""
        known = {refund.reference: refund for refund in payment.refunds}
        in_flight = Money.zero(payment.currency)
        unanswered = None
        keyless = not self.provider(payment.provider).idempotent
        for attempt in await self.db.attempts(
            provider=payment.provider, payment_reference=payment.reference
        ):
            if keyless:
                await self.outcomes.watch(attempt, payment)
            reported = known.get(attempt.provider_reference)
            if reported is not None and reported.status is not attempt.status:
                await self.outcomes.record(attempt, reported, "lookup")
            elif reported is None and attempt.status.holds_balance:
                in_flight = in_flight + attempt.amount  # awaiting approval: held, not sent
                if attempt.provider_reference is None and attempt.status is not RefundStatus.AWAITING_APPROVAL:
                    unanswered = attempt
        held = payment.refunds_holding_balance() + in_flight
        refundable = max(payment.amount - held, Money.zero(payment.currency))
        window_closes = self._window_closes(payment)
        blockers = self._blockers(payment, refundable, in_flight, window_closes, unanswered)
        if payment.status is not PaymentStatus.SUCCESSFUL or (
            window_closes is not None and window_closes <= self.clock()
        ):
            refundable = Money.zero(payment.currency)
        return PaymentView(
            payment=payment,
            refundable=refundable,
            in_flight=in_flight,
            window_closes=window_closes,
            blockers=blockers,
            country=region_of(payment.customer_phone) or CURRENCY_COUNTRY.get(payment.currency),
        )

    def _window_closes(self, payment: Payment) -> datetime | None:
        window = self.provider(payment.provider).settings.refund_window
        return payment.created_at + window if window else None

    def _blockers(
        self,
        payment: Payment,
        refundable: Money,
        in_flight: Money,
        closes: datetime | None,
        unanswered: Attempt | None,
    ) -> tuple[str, ...]:
        blockers = []
        if unanswered is not None:
            blockers.append(
                f"refund {unanswered.attempt_id[:8]} is still in flight with no known outcome: "
                "resolve it first (a new refund now could pay twice)"
            )
        if payment.status is not PaymentStatus.SUCCESSFUL:
            blockers.append(f"the payment is {payment.status.value}, not successful")
        elif refundable.minor == 0:
            if in_flight.minor:
                blockers.append(f"refunds in flight ({in_flight}) cover what is left")
            else:
                blockers.append("already fully refunded")
        if closes is not None and closes <= self.clock():
            blockers.append(f"the refund window closed on {closes:%Y-%m-%d %H:%M} UTC")
        if not self.refunds_enabled:
            blockers.append(f"profile '{self.profile}' is read-only: refunds are not enabled")
        return tuple(blockers)

    async def countries(self, provider: ProviderName) -> list[Country]:
        if provider not in self._countries:
            self._countries[provider] = await self.provider(provider).countries()
        return self._countries[provider]

    async def refund_country(self, view: PaymentView, wanted: str | None) -> Country | None:
        """The country a Vesicash refund is paid in (ISO code or Vesicash id; default: the
        payment's); None for a provider that takes no destination. RefundInvalid if unknown."""
        if not self.provider(view.payment.provider).sends_phone:
            return None
        code = (wanted or view.country or "").strip().upper()
        for country in await self.countries(view.payment.provider):
            if code in (country.iso_code.upper(), str(country.id)):
                return country
        raise RefundInvalid({"country": f"{code or '?'} is not a country Vesicash refunds to"})

    # -- validating ---------------------------------------------------------------------

    def check_phone(self, view: PaymentView, text: str, country: str | None = None) -> MobileNumber:
        """The destination wallet: a valid mobile number of the refund's country."""
        region = country or view.country
        if not region:
            raise PhoneError("choose the country of the mobile number")
        return validate_mobile(text, region)

    def prepare(
        self,
        view: PaymentView,
        *,
        amount: str,
        reason: str,
        phone: str | None = None,
        country: Country | None = None,
        webhook_url: str = "",
        retry_of: str | None = None,
        retry_checked: bool = False,
    ) -> PreparedRefund:
        """Validate every field; raise RefundInvalid naming each problem, or RefundNotAllowed.

        ``retry_checked``: the caller already ran ``check_retry`` (the console, once, in a
        thread), so this call reads nothing from the ledger; ``submit`` checks again anyway.
        """
        if view.blockers:
            raise RefundNotAllowed("cannot refund: " + "; ".join(view.blockers))
        if retry_of is not None and not retry_checked:
            self.check_retry(view.payment, retry_of)
        provider = self.provider(view.payment.provider)
        problems: dict[str, str] = {}
        money = mobile = clean_reason = url = None
        try:
            money = check_amount(amount, view.refundable)
        except MoneyError as error:
            problems["amount"] = str(error)
        try:
            number = phone if phone is not None and provider.sends_phone else None
            mobile = self.check_phone(
                view, number or view.payment.customer_phone, country.iso_code if country else None
            )
        except PhoneError as error:
            problems["phone"] = str(error)
        if provider.sends_phone and country is None:
            problems["country"] = "choose the country the refund is paid in"
        elif country is not None and view.country and country.iso_code != view.country:
            problems["country"] = (
                f"the payment was made in {country_name(view.country)} ({view.payment.currency}): "
                "refund to a wallet there"
            )
        try:
            clean_reason = check_reason(reason)
        except ValueError as error:
            problems["reason"] = str(error)
        try:
            url = check_webhook_url(webhook_url)
        except ValueError as error:
            problems["webhook_url"] = str(error)
        if problems:
            raise RefundInvalid(problems)
        draft = RefundDraft(
            payment=view.payment,
            amount=money,
            reason=clean_reason,
            phone_e164=mobile.e164,
            country_id=country.id if country else None,
            webhook_url=url,
            idempotency_key=str(uuid.uuid4()),
            external_reference=f"rtui-{uuid.uuid4().hex[:20]}",
        )
        return PreparedRefund(view=view, draft=draft, phone=mobile, retry_of=retry_of)

    def check_retry(self, payment: Payment, attempt_id: str) -> Attempt:
        """The failed attempt a refund of ``payment`` may retry; RefundNotAllowed says why not.
        Blocking (three ledger reads): from an event loop, run it in a thread."""
        failed = self.ledger.get(attempt_id)
        if failed.status is not RefundStatus.FAILED:
            raise RefundNotAllowed(f"only a failed refund can be retried; this one is {failed.status}")
        if (failed.provider, failed.payment_reference) != (payment.provider, payment.reference):
            raise RefundNotAllowed("a retry must refund the same payment as the failed refund")
        if NoticeInbox(self.ledger).conflicts(failed.attempt_id):
            raise RefundNotAllowed(
                "the provider notified an outcome that contradicts this failure: reconcile it "
                "with the provider first (a new refund of the payment is capped by what the "
                "provider reports)"
            )
        if not self.provider(payment.provider).idempotent and any(
            refund.status.holds_balance
            for refund in self.provider(payment.provider).tagged_refunds(payment, failed.request)
        ):
            raise RefundNotAllowed(
                "the payment record shows a refund carrying this failed refund's tag: the "
                "customer may have been paid by it; reconcile it with the provider first"
            )
        if retries := self.ledger.attempts(retry_of=failed.attempt_id):
            raise RefundNotAllowed(
                f"already retried as {retries[0].attempt_id[:8]}: retry that one if it failed too"
            )
        return failed

    # -- sending ------------------------------------------------------------------------

    async def submit(self, prepared: PreparedRefund) -> Attempt:
        """Record the intent, send once, classify; try to settle an unknown outcome at once.
        A refund the team ledger's rules hold for approval is recorded and returned unsent
        (AWAITING_APPROVAL): ``approve`` sends it.

        The cap is checked again inside the ledger transaction that records the intent,
        counting every attempt of this payment still in flight, so a stale lookup or a second
        process cannot over-refund. CapExceeded, RefundNotAllowed or LedgerError mean nothing
        was sent. Once the intent is recorded every outcome is in the ledger; if this call is
        interrupted after that, the attempt is marked UNKNOWN and OutcomeUnknown is raised.
        """
        if not self.refunds_enabled:
            raise RefundNotAllowed(f"profile '{self.profile}' is read-only")
        draft = prepared.draft
        payment = draft.payment
        provider = self.provider(payment.provider)
        if prepared.retry_of is not None:
            await asyncio.to_thread(self.check_retry, payment, prepared.retry_of)
        attempt = await self.db.record_attempt(
            NewAttempt(
                profile=self.profile,
                environment=self.environment,
                provider=payment.provider,
                payment_reference=payment.reference,
                amount=draft.amount,
                phone=prepared.phone.e164,
                country_id=draft.country_id,
                reason=draft.reason,
                webhook_url=draft.webhook_url,
                request=provider.build_refund(draft),
                operator=self.operator,
                retry_of=prepared.retry_of,
                batch_row=prepared.batch_row,
            ),
            limit=payment.amount - payment.refunds_holding_balance(),
            known_references=[refund.reference for refund in payment.refunds],
        )
        if attempt.status is RefundStatus.AWAITING_APPROVAL:
            return attempt
        return await self._send_recorded(attempt)

    async def _send_recorded(self, attempt: Attempt) -> Attempt:
        """Send a recorded attempt this process holds the right to send; settle it if it can."""
        with self._sending(attempt):
            await self.outcomes.send(attempt)
            for delay in self.retry_delays:
                if (current := await self.db.get(attempt.attempt_id)).status is not RefundStatus.UNKNOWN:
                    return current
                await asyncio.sleep(delay)
                await self.outcomes.resolve(attempt, source="provider")
        return await self.db.get(attempt.attempt_id)

    @contextlib.contextmanager
    def _sending(self, attempt: Attempt) -> Iterator[None]:
        """Around sending a recorded attempt: no other task of this process touches it, and an
        interruption leaves it UNKNOWN and raises OutcomeUnknown (TrailLost when the ledger
        file itself went away)."""
        self._in_flight.add(attempt.attempt_id)
        try:
            yield
        except LedgerLost as error:
            raise TrailLost(attempt, error) from error
        except BaseException as error:
            self._mark_interrupted(attempt)
            if isinstance(error, Exception):
                raise OutcomeUnknown(attempt, error) from error
            raise
        finally:
            self._in_flight.discard(attempt.attempt_id)

    def _mark_interrupted(self, attempt: Attempt) -> None:
        """Leave a clear UNKNOWN behind when sending was cut short (best effort). Blocking on
        purpose: it runs while the task is being cancelled, when awaiting may not finish."""
        with contextlib.suppress(Exception):
            current = self.ledger.get(attempt.attempt_id)
            if current.provider_reference is None and not current.status.is_terminal:
                self.ledger.add_event(
                    attempt.attempt_id, RefundStatus.UNKNOWN, "engine",
                    note="interrupted before the outcome was recorded",
                )  # fmt: skip

    # -- approvals (team ledger) ----------------------------------------------------------

    async def approve(self, key: str) -> Attempt:
        """Approve another role's refund awaiting approval and send it, exactly once: the
        approval and the claim to send are one ledger transaction, which the database refuses
        unless this role may approve it (ApprovalRefused)."""
        if not self.refunds_enabled:
            raise RefundNotAllowed(f"profile '{self.profile}' is read-only")
        attempt = await self.db.get(key)
        approved = await self.db.decide(attempt.attempt_id, Decision.APPROVED, "", self.operator)
        return await self._send_recorded(approved)

    async def deny(self, key: str, reason: str) -> Attempt:
        """Deny a refund awaiting approval (the reason is required); it is never sent."""
        attempt = await self.db.get(key)
        return await self.db.decide(attempt.attempt_id, Decision.DENIED, reason, self.operator)

    async def cancel(self, key: str) -> Attempt:
        """Withdraw one's own refund while it awaits approval; it is never sent."""
        attempt = await self.db.get(key)
        return await self.db.decide(attempt.attempt_id, Decision.CANCELLED, "", self.operator)

    # -- recovering -----------------------------------------------------------------------

    async def recover(self, attempt_ids: Collection[str] | None = None) -> list[RecoveryResult]:
        """Resolve every pending or unknown attempt; flag those too old to resolve safely."""
        results = []
        for attempt in await self.db.unresolved():
            if attempt_ids is None or attempt.attempt_id in attempt_ids:
                results.append(await self._recover_one(attempt))
        return results

    async def _recover_one(self, attempt: Attempt) -> RecoveryResult:
        """Resolve one attempt; a problem with it is its outcome, never the sweep's end."""
        if attempt.attempt_id in self._in_flight:
            return RecoveryResult(attempt, "skipped: being sent right now")
        self._in_flight.add(attempt.attempt_id)
        try:
            if attempt.provider_reference is None and self.clock() - attempt.created_at > self.flag_after:
                outcome = await self._flag_or_adopt(attempt)
            else:
                outcome = await self.outcomes.resolve(attempt)
        except (ProviderError, LedgerError) as error:
            outcome = f"error: {error}"
        finally:
            self._in_flight.discard(attempt.attempt_id)
        try:
            return RecoveryResult(await self.db.get(attempt.attempt_id), outcome)
        except LedgerError:
            return RecoveryResult(attempt, outcome)

    async def _flag_or_adopt(self, attempt: Attempt) -> str:
        """Too old to resend (keys expire): adopt a matching refund or flag for a human."""
        if await self.outcomes.adopt(attempt, "recovery"):
            return (await self.db.get(attempt.attempt_id)).status.value
        if not attempt.flagged:
            await self.db.flag(
                attempt.attempt_id,
                f"unresolved for over {self.flag_after}: reconcile manually with the provider",
            )
        return "flagged for manual reconciliation"

    # -- an operator's resend decision ----------------------------------------------------

    async def resend_evidence(self, attempt_id: str) -> ResendEvidence:
        """Read the payment record now and say whether the operator may resend the attempt's
        stored request (keyless providers only: the others are resent by ``recover``)."""
        attempt = await self.db.get(attempt_id)
        sends = [e.at for e in await self.db.events(attempt.attempt_id) if e.source in ("intent", "send")]
        quiet_until = sends[-1] + self.resend_quiet
        read_at, on_record, refusal = None, 0, None
        if attempt.status.is_approval_stage:
            refusal = f"it was never sent: the refund is {attempt.status.value.replace('_', ' ')}"
        elif attempt.provider_reference or attempt.status.is_terminal:
            refusal = f"nothing to resend: the refund is {attempt.status}"
        elif self.provider(attempt.provider).idempotent:
            refusal = "resent with its own key by `refund-tui recover`: no decision needed"
        elif attempt.status is RefundStatus.PENDING:
            refusal = (
                "its sender has recorded no answer yet and may still be waiting for it: "
                "run `refund-tui recover` (or wait for tracking) first"
            )
        else:
            refusal, read_at, on_record = await self._record_shows_nothing(attempt)
            if refusal is None and self.clock() < quiet_until:
                refusal = (
                    f"the last request left at {sends[-1]:%H:%M:%S} UTC and may still be "
                    f"executing: a resend is offered from {quiet_until:%H:%M:%S} UTC if the "
                    "payment record still shows no refund from it"
                )
        return ResendEvidence(
            attempt=await self.db.get(attempt.attempt_id),
            first_sent_at=sends[0],
            last_sent_at=sends[-1],
            quiet_until=quiet_until,
            read_at=read_at,
            refunds_on_record=on_record,
            refusal=refusal,
        )

    async def _record_shows_nothing(self, attempt: Attempt) -> tuple[str | None, datetime | None, int]:
        """(why not to resend or None, when the record was read, how many refunds it shows);
        a tagged refund found is recorded as this attempt's."""
        try:
            payment = await self.provider(attempt.provider).get_payment(attempt.payment_reference)
        except ProviderError as error:
            return f"the payment record could not be read: {error}", None, 0
        read_at = self.clock()
        server_time = self.provider(attempt.provider).server_time
        if server_time is not None and abs(server_time - read_at) > MAX_CLOCK_SKEW:
            minutes = abs(server_time - read_at).total_seconds() / 60
            return (
                f"this machine's clock is {minutes:.0f} min off {attempt.provider.value.title()}'s: "
                "the quiet period cannot be judged; correct the clock (NTP) first"
            ), None, 0
        refund = await self.outcomes.watch(attempt, payment)
        if refund is not None:
            await self.outcomes.record(attempt, refund, "operator", note="found on the provider's payment record")
            return f"the payment record shows its refund {refund.reference}: nothing to resend", read_at, len(payment.refunds)
        if lookalike := await self._unexplained_refund(attempt, payment):
            return (
                f"the payment record shows {lookalike.reference} of the same amount that no "
                "refund-tui attempt explains: it may be this refund with its tag cut off; ask "
                f"{attempt.provider.value.title()} before resending"
            ), read_at, len(payment.refunds)
        return None, read_at, len(payment.refunds)

    async def _unexplained_refund(self, attempt: Attempt, payment: Payment) -> Refund | None:
        """A refund of the attempt's amount, holding money, that no attempt of the ledger holds."""
        explained = {
            other.provider_reference
            for other in await self.db.attempts(provider=payment.provider, payment_reference=payment.reference)
        }
        return next(
            (
                refund
                for refund in payment.refunds
                if refund.amount == attempt.amount
                and refund.status.holds_balance
                and refund.reference not in explained
            ),
            None,
        )

    async def resend(self, attempt_id: str) -> Attempt:
        """Resend a keyless attempt's stored request on the operator's decision, after the
        evidence (read again now) allows it; RefundNotAllowed says why not."""
        if not self.refunds_enabled:
            raise RefundNotAllowed(f"profile '{self.profile}' is read-only")
        evidence = await self.resend_evidence(attempt_id)
        attempt = evidence.attempt
        who = f"{self.operator.name}@{self.operator.hostname}"
        if evidence.refusal is not None:
            await self._refused_resend(attempt, who, evidence.refusal)
        note = (
            f"resent on the decision of {who}: the payment record read at "
            f"{evidence.read_at:%H:%M:%S} UTC showed no refund tagged "
            f"[{attempt.request.external_reference}]"
        )
        if attempt.attempt_id in self._in_flight or not await self.db.claim_send(
            attempt.attempt_id, self.resend_quiet, note, "resent"
        ):
            await self._refused_resend(attempt, who, "another process is resending it or settled it")
        with self._sending(attempt):
            await self.outcomes.send(attempt, "operator", resend=True)
        return await self.db.get(attempt.attempt_id)

    async def _refused_resend(self, attempt: Attempt, who: str, reason: str) -> NoReturn:
        """Record an operator's refused resend in the trail (PCI DSS 10.2: failures too), then
        refuse it; a ledger that cannot record it still refuses."""
        with contextlib.suppress(LedgerError):
            await self.db.record_decision(attempt.attempt_id, "refused", f"resend asked by {who}, refused: {reason}")
        raise RefundNotAllowed(f"not resent: {reason}")

    async def refresh(self, attempt_id: str) -> Attempt:
        """Bring one attempt up to date: poll it, or resolve it when its outcome is unknown."""
        attempt = await self.db.get(attempt_id)
        if attempt.status.is_approval_stage or (
            attempt.status.is_terminal and attempt.status is not RefundStatus.COMPLETED
        ):
            return attempt  # nothing was sent: nothing to ask the provider
        await self._recover_one(attempt)
        return await self.db.get(attempt.attempt_id)

    # -- tracking ------------------------------------------------------------------------

    async def track(self, *, force: bool = False) -> int:
        """Poll every refund in flight that is due, at most ``concurrency`` at once.

        Completed refunds of the last RECHECK_COMPLETED are polled too, slowly, so that a
        reversal is seen. Returns how many attempts changed.
        """
        now = self.clock()
        recent = await self.db.attempts(statuses=[RefundStatus.COMPLETED], since=now - RECHECK_COMPLETED)
        due = [
            attempt
            for attempt in [*await self.db.unresolved(), *recent]
            if (attempt.provider_reference or attempt.status is RefundStatus.UNKNOWN)
            and attempt.attempt_id not in self._in_flight
            and (force or self._schedule.is_due(attempt.attempt_id, now))
        ]
        gate = asyncio.Semaphore(self.concurrency)

        async def update(attempt: Attempt) -> bool:
            """Poll a refund the provider knows; resolve an unknown one (never twice at once)."""
            async with gate:
                if attempt.provider_reference:
                    changed, retry_after = await self.outcomes.poll(attempt)
                else:
                    result = await self._recover_one(attempt)
                    changed, retry_after = result.attempt.status is not attempt.status, None
            status, at = (await self.db.get(attempt.attempt_id)).status, self.clock()
            self._schedule.after(
                attempt.attempt_id, at, changed, retry_after, status, at - attempt.created_at
            )
            return changed

        return sum(await asyncio.gather(*(update(attempt) for attempt in due)))
