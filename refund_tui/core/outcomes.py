"""Sending a recorded refund request and settling what became of it.

The only code that talks to a provider's refund endpoint. Its rules:

- a timeout, a dropped connection, a 5xx or a 429 makes an attempt UNKNOWN, never FAILED;
- a stored request is resent unchanged (same key, same body), and only under a claim taken
  in the ledger, so two tasks or two processes never resend the same attempt at once; for a
  provider without idempotency keys (Vesicash) only once the payment record shows no refund
  matching the attempt and the last send can no longer be in flight;
- a rejection of a *resent* request proves nothing about the first send: the attempt becomes
  FAILED only when the payment record, read successfully, shows no refund from it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from refund_tui.core.ledger import Attempt, Ledger, ThreadedLedger
from refund_tui.core.models import ErrorCode, ProviderError, ProviderName, Refund, RefundStatus
from refund_tui.core.provider import Provider

#: Rejections that describe the refund itself (not our credentials, key or endpoint).
BUSINESS_REJECTIONS = frozenset(
    {
        ErrorCode.AMOUNT_EXCEEDS_BALANCE,
        ErrorCode.INSUFFICIENT_FUNDS,
        ErrorCode.INVALID_PHONE,
        ErrorCode.REFUND_NOT_ALLOWED,
    }
)
#: Added to three client timeouts: how long a request without a 4xx answer may still execute.
LEASE_MARGIN = timedelta(seconds=30)


class Outcomes:
    """Sends stored requests and records, in the ledger, what happened to them."""

    def __init__(self, ledger: Ledger, provider: Callable[[ProviderName], Provider]) -> None:
        self.db = ThreadedLedger(ledger)
        self.provider = provider
        self.lease_margin = LEASE_MARGIN

    def lease(self, attempt: Attempt) -> timedelta:
        """How long after an unanswered send a non-idempotent request may not be resent."""
        provider = self.provider(attempt.provider)
        if provider.idempotent:
            return timedelta(0)
        return 3 * timedelta(seconds=provider.settings.timeout_seconds) + self.lease_margin

    async def send(self, attempt: Attempt, source: str = "provider", *, resend: bool = False) -> None:
        """Send the stored request unchanged and record the answer."""
        try:
            refund = await self.provider(attempt.provider).send_refund(attempt.request)
        except ProviderError as error:
            await self._classify(attempt, error, source, resend)
            return
        await self.record(attempt, refund, source, note="accepted by the provider")

    async def record(self, attempt: Attempt, refund: Refund, source: str, note: str | None = None) -> bool:
        """Write the provider's view of the refund; True if anything changed."""
        return await self.db.add_event(
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
            definitive = definitive and (
                not resend or (found is False and error.code in BUSINESS_REJECTIONS)
            )
        if definitive:
            await self.db.add_event(
                attempt.attempt_id, RefundStatus.FAILED, source, failure_reason=error.message,
                **raw, note="refused by the provider",
            )  # fmt: skip
        else:
            await self.db.add_event(
                attempt.attempt_id, RefundStatus.UNKNOWN, source, **raw,
                note=f"outcome unknown ({error.message}); resolved by status, never by a new key",
            )  # fmt: skip

    async def adopt(self, attempt: Attempt, source: str) -> bool | None:
        """Record the provider's refund that this attempt created.

        True when found, False when the payment record shows none, None when the record
        could not be read.
        """
        try:
            provider = self.provider(attempt.provider)
            payment = await provider.get_payment(attempt.payment_reference)
        except ProviderError:
            return None
        claimed = {
            other.provider_reference
            for other in await self.db.attempts(
                provider=attempt.provider, payment_reference=attempt.payment_reference
            )
            if other.provider_reference and other.attempt_id != attempt.attempt_id
        }
        refund = provider.match_refund(payment, attempt.request, attempt.created_at, claimed)
        if refund is None:
            return False
        await self.record(attempt, refund, source, note="found on the provider's payment record")
        return True

    async def resolve(self, attempt: Attempt, source: str = "recovery") -> str:
        """Settle an attempt whose request may or may not have been executed."""
        attempt = await self.db.get(attempt.attempt_id)
        if attempt.status.is_terminal:
            return attempt.status.value
        if attempt.provider_reference:
            await self.poll(attempt, source)
            return (await self.db.get(attempt.attempt_id)).status.value
        provider = self.provider(attempt.provider)
        if not provider.idempotent:
            found = await self.adopt(attempt, source)
            if found is None:
                return "still unknown: the payment record could not be read"
            if found:
                return (await self.db.get(attempt.attempt_id)).status.value
        if not await self.db.claim_send(attempt.attempt_id, self.lease(attempt)):
            return "waiting: the last request may still be in flight"
        await self.send(attempt, source, resend=True)
        return (await self.db.get(attempt.attempt_id)).status.value

    async def poll(self, attempt: Attempt, source: str = "poll") -> tuple[bool, float | None]:
        """Read the refund's status; returns (changed, Retry-After seconds when refused)."""
        try:
            provider = self.provider(attempt.provider)
            refund = await provider.refund_status(attempt.payment_reference, attempt.provider_reference)
        except ProviderError as error:
            return False, error.retry_after
        return await self.record(attempt, refund, source), None
