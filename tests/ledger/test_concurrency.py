"""Processes racing on one ledger (every adapter): the cap, resend claims and notices hold."""

from __future__ import annotations

import multiprocessing
import os
import random
from collections import Counter
from datetime import timedelta

import pytest

from refund_tui.core.ledger import CapExceeded, NoticeOutcome, RefundInFlight
from refund_tui.core.models import RefundStatus
from tests.ledger.factories import LedgerSpec, notice, record

WORKERS = 4
_fork = multiprocessing.get_context("fork")


def _race(spec: LedgerSpec, barrier, results, job: str, argument) -> None:
    ledger = spec.open()
    try:
        barrier.wait(timeout=30)
        results.put(JOBS[job](ledger, argument))
    finally:
        ledger.close()


def _record_until_refused(ledger, _) -> int:
    """Record refunds of one payment until the cap refuses; each is answered at once (while
    another process's refund has no answer yet, a new one is refused as in flight)."""
    recorded = 0
    while True:
        try:
            attempt_id = record(ledger, 100, limit=1000, payment="tr_shared")
        except RefundInFlight:
            continue
        except CapExceeded:
            return recorded
        ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference=attempt_id)
        recorded += 1


def _claim(ledger, attempt_id: str) -> bool:
    return ledger.claim_send(attempt_id, timedelta(minutes=5))


def _receive(ledger, notices) -> list[str]:
    shuffled = list(notices)
    random.shuffle(shuffled)
    return [ledger.receive_notice(item, "{}").value for item in shuffled]


def _append_many(ledger, count: int) -> int:
    """Records ``count`` refunds of payments of its own, each with a status change and a
    notice: rows for every chained table the writers share."""
    for number in range(count):
        attempt_id = record(ledger, 100, payment=f"tr_{os.getpid()}_{number}")
        reference = f"rf_{attempt_id}"
        ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference=reference)
        ledger.receive_notice(notice(RefundStatus.COMPLETED, reference=reference), "{}")
    return count


JOBS = {"record": _record_until_refused, "claim": _claim, "receive": _receive, "append": _append_many}


def race(spec: LedgerSpec, job: str, argument) -> list:
    """Run ``job`` in WORKERS processes released at once; their results."""
    barrier, results = _fork.Barrier(WORKERS), _fork.Queue()
    processes = [
        _fork.Process(target=_race, args=(spec, barrier, results, job, argument))
        for _ in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * WORKERS
    return [results.get(timeout=5) for _ in processes]


def test_processes_racing_on_one_payment_never_exceed_its_cap(spec, open_ledger):
    assert sum(race(spec, "record", None)) == 10
    recorded = open_ledger().attempts(payment_reference="tr_shared")
    assert sum(attempt.amount.minor for attempt in recorded) == 1000
    assert open_ledger().verify_chain().broken is None


def test_processes_racing_to_resend_one_attempt_claim_it_once(spec, open_ledger):
    ledger = open_ledger()
    attempt_id = record(ledger, 100)
    ledger.add_event(attempt_id, RefundStatus.UNKNOWN, "provider", http_status=409, note="409")
    assert sorted(race(spec, "claim", attempt_id)) == [False] * (WORKERS - 1) + [True]
    assert [e.source for e in ledger.events(attempt_id)].count("send") == 1


@pytest.mark.parametrize("rounds", [3])
def test_receivers_racing_on_the_same_notices_apply_each_once(spec, open_ledger, rounds):
    ledger = open_ledger()
    notices = []
    for number in range(rounds):
        attempt_id = record(ledger, 100)
        reference = f"rf_{number}"
        ledger.add_event(attempt_id, RefundStatus.PENDING, "provider", provider_reference=reference)
        notices += [
            notice(RefundStatus.PROCESSING, reference=reference),
            notice(RefundStatus.COMPLETED, reference=reference),
        ]
    outcomes = Counter(value for result in race(spec, "receive", notices) for value in result)
    assert outcomes[NoticeOutcome.DUPLICATE.value] == len(notices) * (WORKERS - 1)
    assert len(ledger.recent_notices(limit=100)) == len(notices)
    for attempt in ledger.attempts():
        assert attempt.status is RefundStatus.COMPLETED
        webhook_events = [e for e in ledger.events(attempt.attempt_id) if e.source == "webhook"]
        assert [e.status for e in webhook_events] in (
            [RefundStatus.COMPLETED],
            [RefundStatus.PROCESSING, RefundStatus.COMPLETED],
        )


def test_writers_appending_at_once_form_one_chain(spec, open_ledger):
    """4 connections (processes) inserting at once: one chain, no gap, no fork."""
    assert race(spec, "append", 5) == [5] * WORKERS
    verdict = open_ledger().verify_chain()
    # each refund: attempt, intent, processing, completed (the notice's), notice
    assert (verdict.count, verdict.broken) == (WORKERS * 5 * 5, None)
