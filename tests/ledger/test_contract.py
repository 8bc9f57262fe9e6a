"""The ledger contract: every adapter (``ledger`` is parametrized over them) behaves alike."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from refund_tui import __version__
from refund_tui.core.ledger import (
    AUDIT_FIELDS,
    AttemptNotFound,
    BatchRow,
    BatchRowRecorded,
    CapExceeded,
    LedgerError,
    NoticeOutcome,
)
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.ledgers import sql as sql_module
from tests.ledger.factories import OPERATOR, new_attempt, notice, record, xof


def test_record_attempt_stores_everything(ledger):
    new = new_attempt(xof(1500), retry_of=None)
    attempt = ledger.record_attempt(new, limit=xof(5000), known_references=())
    assert attempt.request == new.request
    assert attempt.operator == OPERATOR
    assert (attempt.amount, attempt.phone, attempt.reason) == (xof(1500), new.phone, new.reason)
    assert (attempt.pid, attempt.app_version) == (os.getpid(), __version__)
    assert attempt.status is RefundStatus.PENDING
    assert attempt.created_at.tzinfo is not None
    assert abs(datetime.now(UTC) - attempt.created_at) < timedelta(minutes=1)
    [event] = ledger.events(attempt.attempt_id)
    assert (event.status, event.source) == (RefundStatus.PENDING, "intent")

    ledger.add_event(attempt.attempt_id, RefundStatus.FAILED, "provider", failure_reason="no wallet")
    retry = ledger.record_attempt(
        new_attempt(xof(100), retry_of=attempt.attempt_id), limit=xof(5000), known_references=()
    )
    assert retry.retry_of == attempt.attempt_id

def test_cap_counts_refunds_in_flight(ledger):
    first = record(ledger, 600, limit=1000)
    ledger.add_event(first, RefundStatus.PROCESSING, "provider", provider_reference="rf_1")
    with pytest.raises(CapExceeded) as caught:
        record(ledger, 500, limit=1000)
    assert caught.value.remaining == xof(400)
    assert str(caught.value) == (
        "only 400 XOF left to refund on tr_1 once refunds in flight are counted"
    )
    second = record(ledger, 400, limit=1000)
    assert len(ledger.attempts()) == 2
    ledger.add_event(second, RefundStatus.PROCESSING, "provider", provider_reference="rf_2")

    # The provider's figures now include the first refund: it is not counted twice.
    with pytest.raises(CapExceeded) as caught:
        ledger.record_attempt(new_attempt(xof(1)), limit=xof(400), known_references={"rf_1"})
    assert caught.value.remaining == xof(0)

    # A failed refund releases its amount.
    ledger.add_event(second, RefundStatus.FAILED, "provider", failure_reason="wallet not found")
    ledger.record_attempt(new_attempt(xof(400)), limit=xof(400), known_references={"rf_1"})

def test_cap_is_per_payment_and_provider(ledger):
    record(ledger, 1000, limit=1000)
    record(ledger, 1000, limit=1000, payment="tr_2")
    record(ledger, 1000, limit=1000, provider=ProviderName.VESICASH)
    assert len(ledger.attempts()) == 3

def test_add_event_skips_what_tells_nothing_new(ledger):
    attempt_id = record(ledger, 500)
    assert not ledger.add_event(attempt_id, RefundStatus.PENDING, "poll")
    processing = RefundStatus.PROCESSING
    assert ledger.add_event(attempt_id, processing, "provider", provider_reference="rf_9")
    assert not ledger.add_event(attempt_id, processing, "poll")
    assert not ledger.add_event(attempt_id, processing, "poll", provider_reference="rf_9")
    assert ledger.add_event(
        attempt_id, RefundStatus.FAILED, "poll", failure_reason="Recipient wallet not found",
        raw_code="failed", http_status=200,
    )  # fmt: skip
    assert not ledger.add_event(attempt_id, RefundStatus.FAILED, "poll")
    assert ledger.add_event(attempt_id, RefundStatus.FAILED, "poll", failure_reason="other reason")

    attempt = ledger.get(attempt_id)
    assert attempt.provider_reference == "rf_9"  # kept although later events had none
    assert (attempt.status, attempt.failure_reason) == (RefundStatus.FAILED, "other reason")
    events = ledger.events(attempt_id)
    assert [event.status for event in events] == ["pending", "processing", "failed", "failed"]
    assert (events[2].raw_code, events[2].http_status) == ("failed", 200)
    assert events == sorted(events, key=lambda event: event.at)

def test_add_event_for_unknown_attempt(ledger):
    with pytest.raises(KeyError):
        ledger.add_event("no-such-attempt", RefundStatus.PROCESSING, "poll")

def test_flag_marks_without_changing_status(ledger):
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.UNKNOWN, "provider", raw_code="server_error")
    ledger.flag(attempt_id, "unresolved for 24 h: reconcile with the provider")
    attempt = ledger.get(attempt_id)
    assert attempt.flagged and attempt.status is RefundStatus.UNKNOWN
    last = ledger.events(attempt_id)[-1]
    assert (last.source, last.note) == ("flag", "unresolved for 24 h: reconcile with the provider")
    with pytest.raises(ValueError):
        ledger.flag(attempt_id, " ")

def test_get_by_id_prefix_or_provider_reference(ledger):
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference="rf_abc")
    other_id = record(ledger, 700)
    assert ledger.get(attempt_id[:8]).attempt_id == attempt_id
    assert ledger.get(attempt_id[:8].upper()).attempt_id == attempt_id
    assert ledger.get("rf_abc").attempt_id == attempt_id
    assert ledger.get(other_id).amount == xof(700)
    with pytest.raises(KeyError) as caught:
        ledger.get("rf_missing")
    assert str(caught.value) == "no refund attempt or provider reference 'rf_missing'"
    assert isinstance(caught.value, AttemptNotFound)
    with pytest.raises(KeyError):
        ledger.events("missing")

def test_filters_order_counts_and_unresolved(ledger):
    first = record(ledger, 100)
    second = record(ledger, 200, payment="tr_2")
    third = record(ledger, 300, provider=ProviderName.VESICASH)
    ledger.add_event(first, RefundStatus.COMPLETED, "poll", provider_reference="rf_1")
    ledger.add_event(third, RefundStatus.UNKNOWN, "provider")

    assert [a.attempt_id for a in ledger.attempts()] == [third, second, first]
    assert [a.attempt_id for a in ledger.attempts(limit=2)] == [third, second]
    assert [a.attempt_id for a in ledger.attempts(statuses=[RefundStatus.COMPLETED])] == [first]
    assert ledger.attempts(statuses=[]) == []
    assert [a.attempt_id for a in ledger.attempts(provider=ProviderName.VESICASH)] == [third]
    assert [a.attempt_id for a in ledger.attempts(payment_reference="tr_2")] == [second]
    assert ledger.attempts(since=datetime.now(UTC) + timedelta(seconds=5)) == []
    assert len(ledger.attempts(since=datetime.now(UTC) - timedelta(minutes=5))) == 3
    with pytest.raises(ValueError):
        ledger.attempts(since=datetime.now())
    assert [a.attempt_id for a in ledger.unresolved()] == [second, third]
    counts = ledger.counts()
    assert counts[RefundStatus.COMPLETED] == counts[RefundStatus.PENDING] == 1
    assert counts[RefundStatus.UNKNOWN] == 1
    assert counts[RefundStatus.FAILED] == 0 and len(counts) == len(RefundStatus)

def test_audit_rows(ledger, monkeypatch):
    monkeypatch.setattr(sql_module, "_AUDIT_CHUNK", 2)  # exercise the chunked reading
    first = ledger.record_attempt(
        new_attempt(Money(1250, "GHS"), provider=ProviderName.VESICASH),
        limit=Money(5000, "GHS"),
        known_references=(),
    ).attempt_id
    ledger.add_event(first, RefundStatus.PROCESSING, "provider", provider_reference="VRF-1")
    ledger.add_event(first, RefundStatus.COMPLETED, "poll")
    cutoff = datetime.now(UTC)
    second = record(ledger, 900)

    rows = list(ledger.audit_rows())
    assert [row["event_id"] for row in rows] == [1, 2, 3, 4]
    assert all(tuple(row) == AUDIT_FIELDS for row in rows)
    assert [(row["attempt_id"], row["status"]) for row in rows] == [
        (first, "pending"), (first, "processing"), (first, "completed"), (second, "pending"),
    ]  # fmt: skip
    amount = (rows[0]["amount"], rows[0]["amount_minor"], rows[0]["currency"])
    assert amount == ("12.50", 1250, "GHS")
    assert (rows[0]["operator_name"], rows[0]["ssh_client"]) == ("ama", "10.0.0.5:52314")
    assert rows[1]["provider_reference"] == "VRF-1"
    assert [row["attempt_id"] for row in ledger.audit_rows(since=cutoff)] == [second]

def test_statuses_never_go_backwards_and_references_never_change(ledger):
    first = record(ledger, 100)
    assert ledger.add_event(first, RefundStatus.PROCESSING, "poll", provider_reference="rf_1")
    second = record(ledger, 200)
    assert not ledger.add_event(first, RefundStatus.PENDING, "recovery", note="replayed answer")
    assert not ledger.add_event(first, RefundStatus.PROCESSING, "poll", provider_reference="rf_9")
    assert not ledger.add_event(second, RefundStatus.PENDING, "poll", provider_reference="rf_1")
    assert ledger.add_event(first, RefundStatus.COMPLETED, "poll")
    assert not ledger.add_event(first, RefundStatus.FAILED, "poll", failure_reason="late")
    assert ledger.add_event(first, RefundStatus.REVERSED, "poll")
    assert [e.status for e in ledger.events(first)] == [
        RefundStatus.PENDING, RefundStatus.PROCESSING, RefundStatus.COMPLETED, RefundStatus.REVERSED,
    ]  # fmt: skip
    assert ledger.get(first).provider_reference == "rf_1"

def test_a_resend_is_claimed_once_and_only_after_a_refusal_or_the_lease(ledger):
    attempt_id = record(ledger, 100)
    lease = timedelta(minutes=5)
    assert not ledger.claim_send(attempt_id, lease)  # the first send has no answer yet
    ledger.add_event(attempt_id, RefundStatus.UNKNOWN, "provider", http_status=504, note="504")
    assert not ledger.claim_send(attempt_id, lease)  # a gateway 5xx: the provider may be working
    ledger.add_event(attempt_id, RefundStatus.UNKNOWN, "provider", http_status=409, note="409")
    assert ledger.claim_send(attempt_id, lease)  # refused with a 4xx: that request is over
    assert not ledger.claim_send(attempt_id, lease)  # another task's resend is now in flight
    assert ledger.claim_send(attempt_id, timedelta(0))  # an expired lease
    assert [e.source for e in ledger.events(attempt_id)] == [
        "intent", "provider", "provider", "send", "send",
    ]  # fmt: skip
    ledger.add_event(attempt_id, RefundStatus.PROCESSING, "poll", provider_reference="rf_1")
    assert not ledger.claim_send(attempt_id, timedelta(0))  # it has a reference: poll it

def test_a_failed_attempt_is_retried_at_most_once(ledger):
    failed = record(ledger, 100)
    ledger.add_event(failed, RefundStatus.FAILED, "poll", failure_reason="wallet not found")
    retry = record(ledger, 100, retry_of=failed)
    ledger.add_event(retry, RefundStatus.PROCESSING, "provider", provider_reference="rf_retry")
    with pytest.raises(LedgerError, match="refused"):
        record(ledger, 100, retry_of=failed)
    assert [a.retry_of for a in ledger.attempts(retry_of=failed)] == [failed]

def test_a_retried_failure_no_longer_counts_as_failed(ledger):
    failed = record(ledger, 100)
    ledger.add_event(failed, RefundStatus.FAILED, "poll", failure_reason="wallet not found")
    assert ledger.counts()[RefundStatus.FAILED] == 1
    record(ledger, 100, retry_of=failed)
    assert ledger.counts()[RefundStatus.FAILED] == 0


# -- watching for changes ------------------------------------------------------------------


def changed_within(watch, seconds: float = 2.0) -> bool:
    """Whether the watch reports a change before ``seconds`` pass (PostgreSQL delivers its
    notifications just after the commit, not inside it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watch.changed():
            return True
        time.sleep(0.01)
    return False


def test_change_watch_sees_commits_from_other_connections(open_ledger):
    ours, theirs = open_ledger(), open_ledger()
    watch = ours.change_watch()
    try:
        assert not watch.changed()
        attempt_id = record(theirs, 100, limit=500)
        assert changed_within(watch)
        assert not watch.changed()  # reported once
        theirs.add_event(attempt_id, RefundStatus.PROCESSING, "poll", provider_reference="rf_1")
        assert changed_within(watch)
    finally:
        watch.close()


# -- notices -------------------------------------------------------------------------------


def test_a_notice_is_applied_once_and_a_redelivery_is_a_duplicate(ledger):
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference="rf_7")
    completed = notice(RefundStatus.COMPLETED, reference="rf_7", identity="evt_1")
    assert ledger.receive_notice(completed, "{}") is NoticeOutcome.APPLIED
    assert ledger.receive_notice(completed, "{}") is NoticeOutcome.DUPLICATE
    assert ledger.get(attempt_id).status is RefundStatus.COMPLETED
    assert [e.source for e in ledger.events(attempt_id)] == ["intent", "provider", "webhook"]
    [stored] = ledger.recent_notices()
    assert (stored.outcome, stored.attempt_id, stored.notice) == (
        NoticeOutcome.APPLIED, attempt_id, completed,
    )  # fmt: skip


def test_notice_outcomes_unchanged_stale_ignored(ledger):
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.COMPLETED, "provider", provider_reference="rf_8")
    assert ledger.receive_notice(notice(RefundStatus.COMPLETED, reference="rf_8"), "{}") is (
        NoticeOutcome.UNCHANGED
    )
    assert ledger.receive_notice(notice(RefundStatus.PROCESSING, reference="rf_8"), "{}") is (
        NoticeOutcome.STALE
    )
    assert ledger.receive_notice(notice(None, reference="rf_8"), "{}") is NoticeOutcome.IGNORED
    assert ledger.get(attempt_id).status is RefundStatus.COMPLETED


def test_a_contradicting_notice_flags_the_attempt(ledger):
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.COMPLETED, "provider", provider_reference="rf_9")
    assert ledger.receive_notice(notice(RefundStatus.FAILED, reference="rf_9"), "{}") is (
        NoticeOutcome.CONFLICT
    )
    attempt = ledger.get(attempt_id)
    assert attempt.flagged and attempt.status is RefundStatus.COMPLETED
    assert "check with the provider" in ledger.events(attempt_id)[-1].note
    [conflict] = ledger.notice_conflicts(attempt_id)
    assert conflict.notice.status is RefundStatus.FAILED


def test_a_kept_notice_is_matched_once_its_attempt_is_known(ledger):
    early = notice(RefundStatus.COMPLETED, reference="rf_late")
    assert ledger.receive_notice(early, "{}") is NoticeOutcome.KEPT
    assert ledger.reconcile_notices() == 0
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference="rf_late")
    assert [n.notice for n in ledger.recent_notices(kept_only=True)] == [early]
    assert ledger.reconcile_notices() == 1
    assert ledger.reconcile_notices() == 0
    assert ledger.get(attempt_id).status is RefundStatus.COMPLETED
    assert ledger.recent_notices(kept_only=True) == []
    assert ledger.recent_notices()[0].outcome is NoticeOutcome.APPLIED


def test_a_notice_finds_its_attempt_by_our_tag(ledger):
    attempt = ledger.record_attempt(new_attempt(xof(500)), limit=xof(1000), known_references=())
    tagged = notice(RefundStatus.PROCESSING, reference="rf_t", tag=attempt.request.external_reference)
    assert ledger.receive_notice(tagged, "{}") is NoticeOutcome.APPLIED
    assert ledger.get(attempt.attempt_id).provider_reference == "rf_t"


# -- double refunds, identity -------------------------------------------------------------


def test_a_double_refund_is_recorded_once_flags_the_attempt_and_is_counted(ledger):
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference="rf_1")
    other = record(ledger, 300)
    assert ledger.double_refund_count() == 0
    assert ledger.record_double_refund(attempt_id, "rf_1", "rf_2", "double refund: rf_2 too")
    assert not ledger.record_double_refund(attempt_id, "rf_1", "rf_2", "double refund: rf_2 too")
    assert ledger.record_double_refund(attempt_id, "rf_1", "rf_3", "double refund: rf_3 too")
    attempt = ledger.get(attempt_id)
    assert attempt.double_refunds == ("rf_2", "rf_3")
    assert attempt.flagged and attempt.status is RefundStatus.PROCESSING
    assert [e.note for e in ledger.events(attempt_id) if e.source == "flag"] == [
        "double refund: rf_2 too", "double refund: rf_3 too",
    ]  # fmt: skip
    assert ledger.get(other).double_refunds == ()
    assert ledger.double_refund_count() == 1


def test_a_resend_claim_carries_its_note(ledger):
    attempt_id = record(ledger, 100)
    assert ledger.claim_send(attempt_id, timedelta(0), "resent on the decision of ama@ops-1")
    assert ledger.events(attempt_id)[-1].note == "resent on the decision of ama@ops-1"


def test_every_ledger_has_its_own_lasting_identity(open_ledger):
    first, again = open_ledger(), open_ledger()
    assert len(first.ledger_id) == 32 and first.ledger_id == again.ledger_id


def test_payments_retried_ids_and_what_needs_attention(ledger):
    failed = record(ledger, 100)
    ledger.add_event(failed, RefundStatus.FAILED, "provider", failure_reason="no wallet")
    retry = record(ledger, 100, retry_of=failed)
    ledger.add_event(retry, RefundStatus.UNKNOWN, "provider", http_status=504)
    stuck = record(ledger, 100, payment="tr_2")
    ledger.add_event(stuck, RefundStatus.PROCESSING, "provider", provider_reference="rf_s")
    fine = record(ledger, 100, provider=ProviderName.VESICASH)
    ledger.add_event(fine, RefundStatus.COMPLETED, "provider", provider_reference="rf_f")
    assert ledger.retried_ids() == {failed}
    assert sorted(ledger.payments()) == sorted([
        (ProviderName.NOVASEND, "tr_1"), (ProviderName.NOVASEND, "tr_2"), (ProviderName.VESICASH, "tr_1"),
    ])  # fmt: skip
    soon = datetime.now(UTC) + timedelta(minutes=1)
    attention, total = ledger.needing_attention({ProviderName.NOVASEND: soon}, limit=10)
    assert ([a.attempt_id for a in attention], total) == ([stuck, retry], 2)
    attention, total = ledger.needing_attention({}, limit=1)
    assert ([a.attempt_id for a in attention], total) == ([retry], 1)


def test_a_batch_row_is_recorded_once_with_its_intent(ledger):
    row = BatchRow("b" * 32, 7)
    first = record(ledger, 100, batch_row=row)

    with pytest.raises(BatchRowRecorded) as again:
        record(ledger, 100, batch_row=row)

    assert again.value.attempt_id == first
    assert len(ledger.attempts()) == 1  # the refused row left nothing behind
    assert ledger.batch_attempts("b" * 32) == {7: first}
    assert ledger.batch_attempts("c" * 32) == {}


def test_a_refused_batch_row_records_no_row(ledger):
    with pytest.raises(CapExceeded):
        record(ledger, 20_000, batch_row=BatchRow("b" * 32, 1))
    assert ledger.batch_attempts("b" * 32) == {}
    assert ledger.attempts() == []


def test_finding_acknowledgements_keep_the_newest_note(ledger):
    first = ledger.acknowledge_finding(
        "f1", kind="missing", provider=ProviderName.NOVASEND, payment_reference="tr_1",
        note="  asked the provider  ", operator=OPERATOR,
    )  # fmt: skip
    ledger.acknowledge_finding(
        "f1", kind="missing", provider=ProviderName.NOVASEND, payment_reference="tr_1",
        note="provider confirmed", operator=OPERATOR,
    )  # fmt: skip
    with pytest.raises(ValueError, match="note"):
        ledger.acknowledge_finding(
            "f2", kind="missing", provider=ProviderName.NOVASEND, payment_reference="tr_2",
            note="   ", operator=OPERATOR,
        )  # fmt: skip

    assert first.note == "asked the provider" and first.at.tzinfo is not None
    acks = ledger.acknowledgements()
    assert list(acks) == ["f1"]
    assert acks["f1"].note == "provider confirmed"
    assert acks["f1"].operator == f"{OPERATOR.name}@{OPERATOR.hostname}"
    assert acks["f1"].at >= first.at
