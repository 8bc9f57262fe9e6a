"""Never pay twice, never lose the trail: the paths an adversarial trial found, over real HTTP.

Each test counts what the simulator executed (``GET /_sandbox/refunds``) against what the
ledger says. Clock offsets are real: libfaketime for other processes, an injected clock here.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from refund_tui.core.ledger import ThreadedLedger
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.service import RefundNotAllowed
from refund_tui.ledgers.sqlite import SqliteLedger
from tests.test_service import PAYMENTS, REFUND_AMOUNT, _prepare, _swap_provider, executed

VESICASH = ProviderName.VESICASH


async def _unknown_attempt(sandbox, session, provider, **faults):
    """A refund whose answer was lost (the faults decide how); returns (attempt, payment)."""
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    sandbox.faults(**faults)
    attempt = await session.service.submit(prepared)
    assert attempt.status is RefundStatus.UNKNOWN
    return attempt, reference


async def _until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("offset_minutes", [-10, 10])
async def test_a_skewed_local_clock_never_decides_whether_money_moved(
    sandbox, session, offset_minutes
):
    skewed = SqliteLedger(
        session.ledger.path, clock=lambda: datetime.now(UTC) + timedelta(minutes=offset_minutes)
    )
    session.service.ledger = skewed
    session.service.db = session.service.outcomes.db = ThreadedLedger(skewed)
    try:
        attempt, reference = await _unknown_attempt(sandbox, session, VESICASH, drop_next=1)

        [result] = await session.service.recover()

        [refund] = executed(sandbox, reference)
        assert result.attempt.provider_reference == refund["refund_reference"]
        assert result.attempt.status is not RefundStatus.UNKNOWN
    finally:
        skewed.close()


async def test_a_request_the_provider_holds_past_every_timeout_is_never_resent(sandbox, session):
    _swap_provider(session, VESICASH, timeout=0.2)
    attempt, reference = await _unknown_attempt(sandbox, session, VESICASH, hold_refund_ms=1500)
    await asyncio.sleep(0.8)  # three timeouts: the old lease had run out here, and resent

    [waiting] = await session.service.recover()

    assert waiting.outcome.startswith("waiting: the payment record shows no refund tagged")
    assert waiting.attempt.status is RefundStatus.UNKNOWN
    await _until(lambda: executed(sandbox, reference), "the held request executes")
    [found] = await session.service.recover()
    [refund] = executed(sandbox, reference)
    assert found.attempt.provider_reference == refund["refund_reference"]


async def test_novasend_resends_with_its_key_while_the_first_request_is_held(sandbox, session):
    provider = ProviderName.NOVASEND
    _swap_provider(session, provider, timeout=0.2)
    attempt, reference = await _unknown_attempt(sandbox, session, provider, hold_refund_ms=1000)

    await session.service.recover()  # same key, same body: the provider executes it once
    await _until(lambda: executed(sandbox, reference), "the held request executes")
    await asyncio.sleep(0.3)
    await session.service.recover()

    [refund] = executed(sandbox, reference)
    assert session.ledger.get(attempt.attempt_id).provider_reference == refund["refund_reference"]


async def test_an_operator_resend_is_offered_only_after_the_quiet_period(sandbox, session):
    _swap_provider(session, VESICASH, timeout=0.2)
    session.service.resend_quiet = timedelta(seconds=0.6)
    attempt, reference = await _unknown_attempt(sandbox, session, VESICASH, fail_refunds_next=1)

    early = await session.service.resend_evidence(attempt.attempt_id)
    with pytest.raises(RefundNotAllowed, match="may still be executing"):
        await session.service.resend(attempt.attempt_id)
    await asyncio.sleep(0.7)
    evidence = await session.service.resend_evidence(attempt.attempt_id)
    resent = await session.service.resend(attempt.attempt_id)

    assert "may still be executing" in early.refusal
    assert evidence.refusal is None and evidence.read_at is not None
    assert evidence.refunds_on_record == 0
    assert any(f"none tagged [{attempt.request.external_reference}]" in line for line in evidence.lines())
    [refund] = executed(sandbox, reference)
    assert resent.provider_reference == refund["refund_reference"]
    [decision] = [e for e in session.ledger.events(attempt.attempt_id) if e.source == "send"]
    assert "resent on the decision of" in decision.note
    # Both decisions are in the audit trail with their outcome, who and from where (PCI DSS 10.2).
    trail = [row for row in session.ledger.audit_rows() if row["attempt_id"] == attempt.attempt_id]
    decisions = [(row["source"], row["outcome"], row["status"]) for row in trail if row["source"] in ("decision", "send")]
    assert decisions == [("decision", "refused", "unknown"), ("send", "resent", "unknown")]
    refused = next(row for row in trail if row["source"] == "decision")
    assert "refused: the last request left at" in refused["note"]
    who = session.service.operator
    assert (refused["client_account"], refused["client_host"]) == (who.name, who.hostname)
    assert session.ledger.verify_chain().broken is None


async def test_two_operators_resending_at_once_send_once(sandbox, session):
    session.service.resend_quiet = timedelta(seconds=0.3)
    attempt, reference = await _unknown_attempt(sandbox, session, VESICASH, fail_refunds_next=1)
    await asyncio.sleep(0.4)

    results = await asyncio.gather(
        session.service.resend(attempt.attempt_id),
        session.service.resend(attempt.attempt_id),
        return_exceptions=True,
    )

    assert sorted(type(result).__name__ for result in results) == ["Attempt", "RefundNotAllowed"]
    assert len(executed(sandbox, reference)) == 1


async def test_a_resend_executed_twice_is_flagged_as_a_double_refund(sandbox, session):
    _swap_provider(session, VESICASH, timeout=0.2)
    session.service.resend_quiet = timedelta(seconds=0.5)
    attempt, reference = await _unknown_attempt(sandbox, session, VESICASH, hold_refund_ms=1500)
    await asyncio.sleep(0.6)
    resent = await session.service.resend(attempt.attempt_id)  # the record still shows nothing
    await _until(lambda: len(executed(sandbox, reference)) == 2, "the held request executes too")

    await session.service.track(force=True)

    flagged = session.ledger.get(attempt.attempt_id)
    by_resend, by_held_request = (r["refund_reference"] for r in executed(sandbox, reference))
    assert flagged.provider_reference == resent.provider_reference == by_resend
    assert flagged.double_refunds == (by_held_request,)
    assert flagged.flagged
    assert session.ledger.double_refund_count() == 1
    [note] = [e.note for e in session.ledger.events(attempt.attempt_id) if e.source == "flag"]
    assert by_resend in note and by_held_request in note and "reverse" in note


async def test_a_lookup_finds_a_second_execution_too(sandbox, session):
    session.service.resend_quiet = timedelta(seconds=0.3)
    attempt, reference = await _unknown_attempt(sandbox, session, VESICASH, fail_refunds_next=1)
    await asyncio.sleep(0.4)
    await session.service.resend(attempt.attempt_id)
    sandbox.faults(latency_ms=0)
    # the provider executes the stored request again, as a first send held too long would
    await session.service.provider(VESICASH).send_refund(attempt.request)

    view = await session.service.lookup(VESICASH, reference)

    assert len(executed(sandbox, reference)) == 2
    assert session.ledger.get(attempt.attempt_id).double_refunds
    assert view.refundable.minor == PAYMENTS[VESICASH]["amount"] * 100 - 2 * attempt.amount.minor
