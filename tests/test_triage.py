"""Bulk triage over real HTTP: 30 failed refunds retried at once through a 500 storm, each at
most once, no payment refunded beyond its amount; unknown ones resolved, never with a new key."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.triage import resolve_unknown, retry_failed, totals
from tests.test_service import _prepare

FAILING = {  # the simulator fails every refund to a phone ending 9901
    ProviderName.VESICASH: dict(provider="vesicash", amount=300, currency="GHS", phone="+233245559901"),
    ProviderName.NOVASEND: dict(provider="novasend", amount=20000, currency="XOF", phone="+2250755559901"),
}
AMOUNT = {ProviderName.VESICASH: "120", ProviderName.NOVASEND: "8000"}


async def failed_refunds(sandbox, session, count: int) -> list[str]:
    ids = []
    for index in range(count):
        provider = list(ProviderName)[index % 2]
        reference = sandbox.create_payment(**FAILING[provider])
        prepared = await _prepare(session.service, provider, reference, AMOUNT[provider])
        ids.append((await session.service.submit(prepared)).attempt_id)
    await asyncio.sleep(sandbox.settle_seconds * 4)
    await session.service.track(force=True)
    assert {session.ledger.get(i).status for i in ids} == {RefundStatus.FAILED}
    return ids


def executed_beyond_amount(sandbox, session) -> list[str]:
    """Payments whose refunds that moved (or may move) money add up to more than the payment."""
    held = Counter()
    for refund in sandbox.refunds():
        if refund["status"] not in ("failed", "reversed"):
            held[refund["payment_reference"]] += Decimal(str(refund["amount"]))
    paid = {a.payment_reference: a for a in session.ledger.attempts()}
    return [ref for ref, total in held.items() if ref in paid and total > {"GHS": 300, "XOF": 20000}[paid[ref].amount.currency]]


async def test_thirty_failures_retried_through_a_500_storm_each_at_most_once(sandbox, session):
    failed = await failed_refunds(sandbox, session, 30)
    assert totals(session.ledger.get(i) for i in failed) == {
        "GHS": Money(15 * 12000, "GHS"), "XOF": Money(15 * 8000, "XOF"),
    }  # fmt: skip
    seen = []

    def storm_mid_way(result) -> None:
        seen.append(result)
        if len(seen) == 10:
            sandbox.faults(fail_refunds_next=8)

    first = await retry_failed(session.service, failed, concurrency=4, on_result=storm_mid_way)
    again = await retry_failed(session.service, failed, concurrency=4)

    assert len(first) == len(again) == 30
    assert all(result.attempt is not None for result in first)  # each recorded before sending
    unknown = [r.attempt.attempt_id for r in first if r.attempt.status is RefundStatus.UNKNOWN]
    assert 1 <= len(unknown) <= 8  # the storm hit some retries
    assert all(not result.ok and result.attempt is None for result in again)  # nothing recorded
    for result in again:  # a retry of unknown outcome also blocks its payment
        assert "already retried as" in result.outcome or "no known outcome" in result.outcome, result.outcome
    for attempt_id in failed:
        assert len(session.ledger.attempts(retry_of=attempt_id)) <= 1
    assert executed_beyond_amount(sandbox, session) == []
    executions = Counter(r["payment_reference"] for r in sandbox.refunds())
    references = {session.ledger.get(i).payment_reference for i in failed}
    assert max(executions[ref] for ref in references) <= 2  # the failure and its one retry

    resolved = await resolve_unknown(session.service, unknown)

    assert [r.attempt_id for r in resolved] == unknown
    for result in resolved:  # Novasend: resent with its own key; Vesicash: never resent
        if result.attempt.provider is ProviderName.VESICASH:
            assert result.outcome.startswith("waiting: the payment record shows no refund tagged")
        else:
            assert result.ok, result.outcome
    assert executed_beyond_amount(sandbox, session) == []
    for attempt_id in failed:
        assert len(session.ledger.attempts(retry_of=attempt_id)) <= 1


async def test_a_storm_on_every_request_mid_way_never_retries_a_failure_twice(sandbox, session):
    """The storm also hits the lookups that re-check each payment's balance (``fail_next``):
    a retry whose lookup gave up records nothing and says so; a second pass retries exactly
    those, and no failure is ever retried twice nor any payment refunded beyond its amount."""
    failed = await failed_refunds(sandbox, session, 12)
    seen = []

    def storm_mid_way(result) -> None:
        seen.append(result)
        if len(seen) == 4:
            sandbox.faults(fail_next=20)  # more than the lookups' backoff absorbs (4 at once x 5 tries)

    first = await retry_failed(session.service, failed, concurrency=4, on_result=storm_mid_way)
    sandbox.faults(fail_next=0)
    not_retried = [r.attempt_id for r in first if r.attempt is None]
    hit = [r for r in first if r.attempt is None or r.attempt.status is RefundStatus.UNKNOWN]
    assert hit, [r.outcome for r in first]  # the storm hit some retries
    for result in first:
        recorded = session.ledger.attempts(retry_of=result.attempt_id)
        assert len(recorded) == (0 if result.attempt is None else 1), result.outcome
        assert result.attempt is not None or result.outcome.startswith(("not retried:", "error:")), result.outcome

    again = await retry_failed(session.service, failed, concurrency=4)

    assert sorted(r.attempt_id for r in again if r.attempt is not None) == sorted(not_retried)
    for attempt_id in failed:
        assert len(session.ledger.attempts(retry_of=attempt_id)) == 1
    assert executed_beyond_amount(sandbox, session) == []
