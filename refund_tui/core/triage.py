"""Bulk triage: retry many failed refunds, or resolve many of unknown outcome, in one go.

Each retry is what the console's single retry is: a new attempt with its own key, linked to
the failure (``retry_of``), for the same amount, wallet and reason, prepared and submitted by
``RefundService`` under its usual rules (a failure is retried once, the payment's balance is
checked again when the intent is recorded). Each unknown refund is resolved as ``recover``
resolves it, never resent with a new key. One row's problem is that row's result: it never
stops the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from refund_tui.core.backoff import read_with_backoff
from refund_tui.core.ledger import Attempt, CapExceeded, LedgerError
from refund_tui.core.models import ProviderError, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.service import OutcomeUnknown, RefundNotAllowed, RefundService
from refund_tui.core.validation import RefundInvalid


@dataclass(frozen=True, slots=True)
class TriageResult:
    """What became of one selected refund: ``attempt`` is the retry (or the resolved attempt),
    None when nothing was sent; ``outcome`` says it in words."""

    attempt_id: str
    attempt: Attempt | None
    outcome: str
    ok: bool


def totals(attempts: Iterable[Attempt]) -> dict[str, Money]:
    """Total amount per currency."""
    sums: dict[str, Money] = {}
    for attempt in attempts:
        currency = attempt.amount.currency
        sums[currency] = sums.get(currency, Money.zero(currency)) + attempt.amount
    return dict(sorted(sums.items()))


async def retry_failed(
    service: RefundService,
    attempt_ids: Iterable[str],
    *,
    concurrency: int = 8,
    on_result: Callable[[TriageResult], None] = lambda result: None,
) -> list[TriageResult]:
    """Retry each failed refund once, at most ``concurrency`` at a time."""

    async def retry(attempt_id: str) -> TriageResult:
        failed = await service.db.get(attempt_id)
        try:
            view = await read_with_backoff(lambda: service.lookup(failed.provider, failed.payment_reference))
            prepared = service.prepare(
                view,
                amount=failed.amount.plain(),
                reason=failed.reason,
                phone=failed.phone,
                country=await service.refund_country(view, failed.country_id),
                webhook_url=failed.webhook_url or "",
                retry_of=failed.attempt_id,
            )
            attempt = await service.submit(prepared)
        except OutcomeUnknown as error:
            attempt = await service.db.get(error.attempt.attempt_id)
        except (RefundInvalid, RefundNotAllowed, CapExceeded, ProviderError, LedgerError) as error:
            return TriageResult(attempt_id, None, f"not retried: {error}", False)
        ok = attempt.status is not RefundStatus.FAILED and attempt.status is not RefundStatus.UNKNOWN
        return TriageResult(attempt_id, attempt, f"retried as {attempt.attempt_id[:8]}: {attempt.status}", ok)

    return await _each(attempt_ids, retry, concurrency, on_result)


async def resolve_unknown(
    service: RefundService,
    attempt_ids: Iterable[str],
    *,
    concurrency: int = 8,
    on_result: Callable[[TriageResult], None] = lambda result: None,
) -> list[TriageResult]:
    """Resolve each refund of unknown outcome as ``recover`` does (never with a new key)."""

    async def resolve(attempt_id: str) -> TriageResult:
        [result] = await service.recover([attempt_id]) or [None]
        if result is None:
            attempt = await service.db.get(attempt_id)
            return TriageResult(attempt_id, attempt, f"nothing to resolve: {attempt.status}", True)
        ok = result.attempt.status is not RefundStatus.UNKNOWN
        return TriageResult(attempt_id, result.attempt, result.outcome, ok)

    return await _each(attempt_ids, resolve, concurrency, on_result)


async def _each(attempt_ids, work, concurrency: int, on_result) -> list[TriageResult]:
    gate = asyncio.Semaphore(concurrency)

    async def one(attempt_id: str) -> TriageResult:
        async with gate:
            try:
                result = await work(attempt_id)
            except (ProviderError, LedgerError) as error:
                result = TriageResult(attempt_id, None, f"error: {error}", False)
        on_result(result)
        return result

    return list(await asyncio.gather(*(one(attempt_id) for attempt_id in attempt_ids)))
