"""RefundService: validate -> record intent -> send -> classify -> track -> recover.

The only path by which money moves. Every rule that keeps a customer from being refunded
twice lives here or in the ledger:

- the attempt, with its key and exact body, is committed to the ledger before any byte is
  sent, inside the same transaction that checks the cap;
- a timeout, dropped connection or 5xx makes an attempt UNKNOWN, never FAILED;
- an UNKNOWN attempt is resent only as stored (same key, same body) for an idempotent
  provider, and for Vesicash only once the payment record shows no matching refund;
- a failed refund is retried as a new attempt with a new key, linked to the failed one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from refund_tui.core.ledger import Attempt, CapExceeded, Ledger, NewAttempt, Operator
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
from refund_tui.core.phone import MobileNumber, PhoneError, region_of, validate_mobile
from refund_tui.core.validation import RefundInvalid, check_amount, check_reason, check_webhook_url
from refund_tui.providers.base import Provider, RefundDraft

#: Currency -> country, for payments whose customer phone does not tell.
CURRENCY_COUNTRY = {"GHS": "GH", "ZMW": "ZM", "NGN": "NG", "KES": "KE", "XOF": "CI", "XAF": "CM"}

#: Pauses before each immediate resolution of an attempt whose outcome is unknown.
RETRY_DELAYS = (0.5, 1.5)
MAX_POLL_DELAY = 60.0


class RefundNotAllowed(Exception):
    """The refund cannot be made at all (read-only profile, payment not refundable)."""


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

    @property
    def can_refund(self) -> bool:
        return not self.blockers


@dataclass(frozen=True, slots=True)
class PreparedRefund:
    """A validated refund, ready for the operator's confirmation."""

    view: PaymentView
    draft: RefundDraft
    phone: MobileNumber
    retry_of: str | None

    @property
    def balance_after(self) -> Money:
        return self.view.refundable - self.draft.amount


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

    def after(self, attempt_id: str, now: datetime, changed: bool, retry_after: float | None) -> None:
        delay = 2.0 if changed else min(self.delay.get(attempt_id, 1.0) * 2, MAX_POLL_DELAY)
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
        concurrency: int = 8,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.ledger = ledger
        self.providers = dict(providers)
        self.profile = profile
        self.environment = environment
        self.refunds_enabled = refunds_enabled
        self.operator = operator or Operator.current()
        self.flag_after = flag_after
        self.concurrency = concurrency
        self.retry_delays = retry_delays
        self.clock = clock
        self._countries: dict[ProviderName, list[Country]] = {}
        self._in_flight: set[str] = set()
        self._schedule = _PollSchedule()

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
        if not reference:
            raise ProviderError(
                ErrorCode.PAYMENT_NOT_FOUND, "enter a payment reference", provider=provider
            )
        payment = await self.provider(provider).get_payment(reference)
        return self.view(payment)

    def view(self, payment: Payment) -> PaymentView:
        known = {refund.reference for refund in payment.refunds}
        in_flight = Money.zero(payment.currency)
        for attempt in self.ledger.attempts(
            provider=payment.provider, payment_reference=payment.reference
        ):
            if attempt.status.holds_balance and attempt.provider_reference not in known:
                in_flight = in_flight + attempt.amount
        held = payment.refunds_holding_balance() + in_flight
        refundable = max(payment.amount - held, Money.zero(payment.currency))
        window_closes = self._window_closes(payment)
        return PaymentView(
            payment=payment,
            refundable=refundable,
            in_flight=in_flight,
            window_closes=window_closes,
            blockers=self._blockers(payment, refundable, in_flight, window_closes),
            country=region_of(payment.customer_phone) or CURRENCY_COUNTRY.get(payment.currency),
        )

    def _window_closes(self, payment: Payment) -> datetime | None:
        window = self.provider(payment.provider).settings.refund_window
        return payment.created_at + window if window else None

    def _blockers(
        self, payment: Payment, refundable: Money, in_flight: Money, closes: datetime | None
    ) -> tuple[str, ...]:
        blockers = []
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
    ) -> PreparedRefund:
        """Validate every field; raise RefundInvalid naming each problem, or RefundNotAllowed."""
        if view.blockers:
            raise RefundNotAllowed("cannot refund: " + "; ".join(view.blockers))
        if retry_of is not None:
            self._check_retry(view.payment, retry_of)
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

    def _check_retry(self, payment: Payment, attempt_id: str) -> None:
        failed = self.ledger.get(attempt_id)
        if failed.status is not RefundStatus.FAILED:
            raise RefundNotAllowed(f"only a failed refund can be retried; this one is {failed.status}")
        if (failed.provider, failed.payment_reference) != (payment.provider, payment.reference):
            raise RefundNotAllowed("a retry must refund the same payment as the failed refund")

    # -- sending ------------------------------------------------------------------------

    async def submit(self, prepared: PreparedRefund) -> Attempt:
        """Record the intent, send once, classify; resolve an unknown outcome if it can.

        The cap is checked again inside the ledger transaction that records the intent,
        counting every attempt of this payment still in flight, so a stale lookup or a
        second process cannot over-refund. Raises CapExceeded or RefundNotAllowed before
        anything is sent; afterwards every outcome is in the ledger and the attempt is
        returned.
        """
        if not self.refunds_enabled:
            raise RefundNotAllowed(f"profile '{self.profile}' is read-only")
        draft = prepared.draft
        payment = draft.payment
        provider = self.provider(payment.provider)
        attempt = self.ledger.record_attempt(
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
            ),
            limit=payment.amount - payment.refunds_holding_balance(),
            known_references=[refund.reference for refund in payment.refunds],
        )
        self._in_flight.add(attempt.attempt_id)
        try:
            await self._send(attempt)
            for delay in self.retry_delays:
                if self.ledger.get(attempt.attempt_id).status is not RefundStatus.UNKNOWN:
                    break
                await asyncio.sleep(delay)
                await self._resolve_unknown(self.ledger.get(attempt.attempt_id))
        finally:
            self._in_flight.discard(attempt.attempt_id)
        return self.ledger.get(attempt.attempt_id)

    async def _send(self, attempt: Attempt, source: str = "provider") -> None:
        """Send the stored request unchanged and write what happened to the ledger."""
        provider = self.provider(attempt.provider)
        try:
            refund = await provider.send_refund(attempt.request)
        except ProviderError as error:
            await self._classify_error(attempt, error, source)
            return
        self._record_refund(attempt, refund, source, note="accepted by the provider")

    async def _classify_error(self, attempt: Attempt, error: ProviderError, source: str) -> None:
        raw = {
            "raw_code": error.raw_code or error.code.value,
            "raw_message": error.raw_message,
            "http_status": error.http_status,
        }
        if error.code is ErrorCode.DUPLICATE_REFUND and await self._adopt_quietly(attempt, source):
            return
        if error.code.outcome_unknown or error.code in (
            ErrorCode.RATE_LIMITED,
            ErrorCode.DUPLICATE_REFUND,
        ):
            self.ledger.add_event(
                attempt.attempt_id,
                RefundStatus.UNKNOWN,
                source,
                **raw,
                note=f"outcome unknown ({error.message}); resolved by status, never by a new key",
            )
        else:
            self.ledger.add_event(
                attempt.attempt_id,
                RefundStatus.FAILED,
                source,
                failure_reason=error.message,
                **raw,
                note="refused by the provider",
            )

    def _record_refund(self, attempt: Attempt, refund: Refund, source: str, note: str | None = None) -> bool:
        return self.ledger.add_event(
            attempt.attempt_id,
            refund.status,
            source,
            provider_reference=refund.reference,
            failure_reason=refund.failure_reason,
            note=note,
        )

    # -- resolving unknown outcomes ---------------------------------------------------------

    async def _adopt_match(self, attempt: Attempt, source: str) -> bool:
        """Find the provider's refund this attempt created and record it; False if none."""
        provider = self.provider(attempt.provider)
        payment = await provider.get_payment(attempt.payment_reference)
        claimed = {
            other.provider_reference
            for other in self.ledger.attempts(
                provider=attempt.provider, payment_reference=attempt.payment_reference
            )
            if other.provider_reference and other.attempt_id != attempt.attempt_id
        }
        refund = provider.match_refund(payment, attempt.request, attempt.created_at, claimed)
        if refund is None:
            return False
        self._record_refund(attempt, refund, source, note="found on the provider's payment record")
        return True

    async def _adopt_quietly(self, attempt: Attempt, source: str) -> bool:
        try:
            return await self._adopt_match(attempt, source)
        except ProviderError:
            return False

    async def _resolve_unknown(self, attempt: Attempt, source: str = "recovery") -> str:
        """Settle an attempt whose request may or may not have been executed."""
        provider = self.provider(attempt.provider)
        try:
            if provider.idempotent:
                await self._send(attempt, source)
            elif not await self._adopt_match(attempt, source):
                await self._send(attempt, source)
        except ProviderError as error:
            return f"still unknown: {error.message}"
        return self.ledger.get(attempt.attempt_id).status.value

    def _owned_elsewhere(self, attempt: Attempt) -> bool:
        """True while another live process on this host may still have the request in flight."""
        if attempt.attempt_id in self._in_flight:
            return True
        if attempt.pid == os.getpid() or attempt.operator.hostname != socket.gethostname():
            return False
        lease = timedelta(seconds=self._timeout(attempt.provider) * 3 + 30)
        if self.clock() - attempt.created_at > lease:
            return False
        try:
            os.kill(attempt.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _timeout(self, name: ProviderName) -> float:
        return self.provider(name).settings.timeout_seconds

    async def recover(self, attempt_ids: Collection[str] | None = None) -> list[RecoveryResult]:
        """Resolve every pending or unknown attempt; flag those too old to resolve safely."""
        results = []
        for attempt in self.ledger.unresolved():
            if attempt_ids is not None and attempt.attempt_id not in attempt_ids:
                continue
            results.append(await self._recover_one(attempt))
        return results

    async def _recover_one(self, attempt: Attempt) -> RecoveryResult:
        if self._owned_elsewhere(attempt):
            return RecoveryResult(attempt, "skipped: still in flight in a running process")
        if attempt.provider_reference:
            outcome = await self._poll(attempt)
        elif self.clock() - attempt.created_at > self.flag_after:
            outcome = await self._flag_or_adopt(attempt)
        else:
            outcome = await self._resolve_unknown(attempt)
        return RecoveryResult(self.ledger.get(attempt.attempt_id), outcome)

    async def _flag_or_adopt(self, attempt: Attempt) -> str:
        """Too old to resend (keys expire): adopt a matching refund or flag for a human."""
        try:
            if await self._adopt_match(attempt, "recovery"):
                return self.ledger.get(attempt.attempt_id).status.value
        except ProviderError as error:
            return f"still unknown: {error.message}"
        if not attempt.flagged:
            self.ledger.flag(
                attempt.attempt_id,
                f"unresolved for over {self.flag_after}: reconcile manually with the provider",
            )
        return "flagged for manual reconciliation"

    # -- tracking ------------------------------------------------------------------------

    async def _poll(self, attempt: Attempt, source: str = "poll") -> str:
        provider = self.provider(attempt.provider)
        try:
            refund = await provider.refund_status(attempt.payment_reference, attempt.provider_reference)
        except ProviderError as error:
            self._schedule.after(attempt.attempt_id, self.clock(), False, error.retry_after)
            return f"status unavailable: {error.message}"
        changed = self._record_refund(attempt, refund, source)
        self._schedule.after(attempt.attempt_id, self.clock(), changed, None)
        return refund.status.value

    async def track(self, *, force: bool = False) -> int:
        """Poll every in-flight refund that is due, at most ``concurrency`` at once.

        Returns how many attempts changed status.
        """
        now = self.clock()
        due = [
            attempt
            for attempt in self.ledger.unresolved()
            if attempt.provider_reference
            and attempt.attempt_id not in self._in_flight
            and (force or self._schedule.is_due(attempt.attempt_id, now))
        ]
        gate = asyncio.Semaphore(self.concurrency)
        before = {attempt.attempt_id: attempt.status for attempt in due}

        async def poll(attempt: Attempt) -> None:
            async with gate:
                await self._poll(attempt)

        await asyncio.gather(*(poll(attempt) for attempt in due))
        return sum(
            1 for attempt_id, status in before.items() if self.ledger.get(attempt_id).status != status
        )

    async def refresh(self, attempt_id: str) -> Attempt:
        """Bring one attempt up to date: poll it, or resolve it when its outcome is unknown."""
        attempt = self.ledger.get(attempt_id)
        if attempt.status.is_terminal:
            return attempt
        await self._recover_one(attempt)
        return self.ledger.get(attempt.attempt_id)

