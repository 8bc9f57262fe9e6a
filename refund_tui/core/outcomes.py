"""Sending a recorded refund request and settling what became of it.

The only code that talks to a provider's refund endpoint. Its rules:

- a timeout, a dropped connection, a 5xx or a 429 makes an attempt UNKNOWN, never FAILED;
- a stored request is resent unchanged (same key, same body), and only under a claim taken
  in the ledger, so two tasks or two processes never resend the same attempt at once;
- a request without an idempotency key (Vesicash) is never resent automatically: no timer
  proves it dead. Its refund is found on the payment record by the attempt's tag, or an
  operator decides to resend (``RefundService.resend``);
- every read of such a payment record looks for a second refund carrying an attempt's tag,
  and records it as a double refund;
- a rejection of a *resent* request proves nothing about the first send: the attempt becomes
  FAILED only when the payment record, read successfully, shows no refund from it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from refund_tui.core.ledger import Attempt, Ledger
from refund_tui.core.models import (
    ErrorCode,
    Payment,
    ProviderError,
    ProviderName,
    Refund,
    RefundStatus,
)
from refund_tui.providers.base import Provider

#: Rejections that describe the refund itself (not our credentials, key or endpoint).
BUSINESS_REJECTIONS = frozenset(
    {
        ErrorCode.AMOUNT_EXCEEDS_BALANCE,
        ErrorCode.INSUFFICIENT_FUNDS,
        ErrorCode.INVALID_PHONE,
        ErrorCode.REFUND_NOT_ALLOWED,
    }
)


class Outcomes:
    """Sends stored requests and records, in the ledger, what happened to them."""

    def __init__(self, ledger: Ledger, provider: Callable[[ProviderName], Provider]) -> None:
        self.ledger = ledger
        self.provider = provider

    async def send(self, attempt: Attempt, source: str = "provider", *, resend: bool = False) -> None:
        """Send the stored request unchanged and record the answer."""
        try:
            refund = await self.provider(attempt.provider).send_refund(attempt.request)
        except ProviderError as error:
            await self._classify(attempt, error, source, resend)
            return
        self.record(attempt, refund, source, note="accepted by the provider")

    def record(self, attempt: Attempt, refund: Refund, source: str, note: str | None = None) -> bool:
        """Write the provider's view of the refund; True if anything changed."""
        return self.ledger.add_event(
            attempt.attempt_id,
            refund.status,
            source,
            provider_reference=refund.reference,
            failure_reason=refund.failure_reason,
            note=note,
        )

    async def _classify(self, attempt: Attempt, error: ProviderError, source: str, resend: bool) -> None:
        raw = {
            "raw_code": error.raw_code or error.code.value,
            "raw_message": error.raw_message,
            "http_status": error.http_status,
        }
        definitive = not error.code.outcome_unknown and error.code not in (
            ErrorCode.RATE_LIMITED,
            ErrorCode.DUPLICATE_REFUND,
        )
        if error.code is ErrorCode.DUPLICATE_REFUND or (definitive and resend):
            found = await self.adopt(attempt, source)
            if found:
                return
            keyless = not self.provider(attempt.provider).idempotent
            definitive = definitive and (
                not resend
                # a keyless first request may still be held: only its record can fail it
                or (found is False and error.code in BUSINESS_REJECTIONS and not keyless)
            )
        if definitive:
            self.ledger.add_event(
                attempt.attempt_id, RefundStatus.FAILED, source, failure_reason=error.message,
                **raw, note="refused by the provider",
            )  # fmt: skip
        else:
            self.ledger.add_event(
                attempt.attempt_id, RefundStatus.UNKNOWN, source, **raw,
                note=f"outcome unknown ({error.message}); resolved by status, never by a new key",
            )  # fmt: skip

    async def adopt(self, attempt: Attempt, source: str) -> bool | None:
        """Record the provider's refund that this attempt created.

        True when found, False when the payment record shows none, None when the record
        could not be read.
        """
        try:
            payment = await self.provider(attempt.provider).get_payment(attempt.payment_reference)
        except ProviderError:
            return None
        refund = self.watch(attempt, payment)
        if refund is None:
            return False
        self.record(attempt, refund, source, note="found on the provider's payment record")
        return True

    def watch(self, attempt: Attempt, payment: Payment) -> Refund | None:
        """The refund on ``payment``'s record that the attempt created (its known reference,
        else the oldest carrying its tag and holding money).

        Another tagged refund holding money is a second execution of the same request:
        recorded as a double refund when the attempt's own refund holds money too, else the
        attempt is flagged (its refund failed, or it failed, yet the tag was paid). A failed
        second execution paid nothing and is not reported.
        """
        tagged = self.provider(attempt.provider).tagged_refunds(payment, attempt.request)
        holding = [refund for refund in tagged if refund.status.holds_balance]
        ours = attempt.provider_reference or next(
            (refund.reference for refund in holding or tagged), None
        )
        mine = next((refund for refund in payment.refunds if refund.reference == ours), None)
        paid = [refund for refund in holding if refund.reference != ours]
        if paid and mine is not None and mine.status.holds_balance:
            for second in paid:
                self.ledger.record_double_refund(
                    attempt.attempt_id, ours, second.reference,
                    f"double refund: {second.reference} ({second.status}) carries this "
                    f"attempt's tag [{attempt.request.external_reference}] beside {ours}; the "
                    "customer was paid twice: recover the second payment from the customer, "
                    f"or ask {attempt.provider.value.title()} to reverse {second.reference}",
                )  # fmt: skip
            return mine
        failed_but_paid = attempt.status is RefundStatus.FAILED and mine in holding
        if (paid or failed_but_paid) and not attempt.flagged:
            moved = ", ".join(refund.reference for refund in paid or [mine])
            self.ledger.flag(
                attempt.attempt_id,
                f"{moved} carries this attempt's tag and holds money although the attempt is "
                f"{attempt.status}: the customer was paid; reconcile it with the provider",
            )
        return mine

    async def resolve(self, attempt: Attempt, source: str = "recovery") -> str:
        """Settle an attempt whose request may or may not have been executed."""
        attempt = self.ledger.get(attempt.attempt_id)
        if attempt.status.is_terminal:
            return attempt.status.value
        if attempt.provider_reference:
            await self.poll(attempt, source)
            return self.ledger.get(attempt.attempt_id).status.value
        if not self.provider(attempt.provider).idempotent:
            found = await self.adopt(attempt, source)
            if found is None:
                return "still unknown: the payment record could not be read"
            if found:
                return self.ledger.get(attempt.attempt_id).status.value
            waiting = (
                f"the payment record shows no refund tagged "
                f"[{attempt.request.external_reference}] yet; never resent automatically "
                f"(an operator may decide: R in its details, or refund-tui resend {attempt.attempt_id[:8]})"
            )
            if attempt.status is RefundStatus.PENDING:  # its sender never recorded an answer
                self.ledger.add_event(attempt.attempt_id, RefundStatus.UNKNOWN, source, note=waiting)
            return f"waiting: {waiting}"
        if not self.ledger.claim_send(attempt.attempt_id, timedelta(0)):
            return "settled meanwhile by another process"
        await self.send(attempt, source, resend=True)
        return self.ledger.get(attempt.attempt_id).status.value

    async def poll(self, attempt: Attempt, source: str = "poll") -> tuple[bool, float | None]:
        """Read the refund's status; returns (changed, Retry-After seconds when refused)."""
        try:
            provider = self.provider(attempt.provider)
            if provider.idempotent:
                refund = await provider.refund_status(
                    attempt.payment_reference, attempt.provider_reference
                )
            else:  # read the whole record: it also shows any second execution
                payment = await provider.get_payment(attempt.payment_reference)
                refund = self.watch(attempt, payment)
        except ProviderError as error:
            return False, error.retry_after
        return refund is not None and self.record(attempt, refund, source), None
