"""The triage contract (claims and notes), on every adapter (``ledger`` is parametrized)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from refund_tui.core.ledger import (
    AUDIT_FIELDS,
    NOTE_LIMIT,
    AttemptNotFound,
    ClaimHeld,
    LedgerError,
    TriageAction,
    made_by,
)
from refund_tui.core.models import RefundStatus
from tests.ledger.factories import OPERATOR, record

OTHER = dataclasses.replace(OPERATOR, name="kofi", uid=1002, hostname="oncall-2", ssh_client=None)


def me(ledger) -> str:
    return ledger.role or OPERATOR.name


def test_a_claim_is_visible_kept_and_derived(ledger):
    attempt_id = record(ledger, 500)
    assert ledger.claims() == {}

    claim = ledger.claim(attempt_id, OPERATOR)
    assert (claim.action, claim.operator, claim.who, claim.took_over) == (
        TriageAction.CLAIM, OPERATOR, me(ledger), None,
    )  # fmt: skip
    assert abs(datetime.now(UTC) - claim.at) < timedelta(minutes=1)
    assert ledger.claims() == {attempt_id: claim}
    # Claiming what is already yours writes nothing.
    assert ledger.claim(attempt_id, OPERATOR) == claim
    assert ledger.triage_log(attempt_id) == [claim]

    released = ledger.release(attempt_id, OPERATOR)
    assert released.action is TriageAction.RELEASE
    assert ledger.claims() == {}
    assert ledger.release(attempt_id, OPERATOR) is None
    assert [entry.action for entry in ledger.triage_log(attempt_id)] == ["claim", "release"]
    # The attempt itself is untouched: a claim is not a status change.
    [event] = ledger.events(attempt_id)
    assert event.source == "intent"
    assert ledger.get(attempt_id).status is RefundStatus.PENDING


def test_someone_elses_claim_is_taken_over_only_explicitly(ledger):
    """Someone else is another OS account on SQLite; on PostgreSQL, another database role
    (tests/ledger/test_postgres.py has two): there the OS account a client reports names nobody."""
    attempt_id = record(ledger, 500)
    first = ledger.claim(attempt_id, OTHER)
    if ledger.role is not None:
        assert ledger.claim(attempt_id, OPERATOR) == first
        assert ledger.release(attempt_id, OPERATOR).took_over is None
        return
    with pytest.raises(ClaimHeld) as held:
        ledger.claim(attempt_id, OPERATOR)
    assert held.value.claim.who == "kofi"
    assert str(held.value).startswith(f"kofi has been on refund {attempt_id[:8]} since ")
    with pytest.raises(ClaimHeld):
        ledger.release(attempt_id, OPERATOR)

    mine = ledger.claim(attempt_id, OPERATOR, take_over=True)
    assert (mine.who, mine.took_over) == ("ama", "kofi")
    assert ledger.claims()[attempt_id] == mine
    gone = ledger.release(attempt_id, OTHER, take_over=True)
    assert (gone.who, gone.took_over) == ("kofi", "ama")
    assert ledger.claims() == {}


def test_notes_are_kept_as_written_and_blank_or_huge_ones_refused(ledger):
    attempt_id = record(ledger, 500)
    hostile = "called the customer \x1b]0;pwned\x07\x1b[31mred\u202e"
    note = ledger.add_note(attempt_id, f"  {hostile}\n", OPERATOR)
    assert (note.action, note.note, note.who) == (TriageAction.NOTE, hostile, me(ledger))
    for blank in ("", "  \n\t"):
        with pytest.raises(ValueError, match="empty"):
            ledger.add_note(attempt_id, blank, OPERATOR)
    with pytest.raises(ValueError, match="under"):
        ledger.add_note(attempt_id, "x" * (NOTE_LIMIT + 1), OPERATOR)
    assert ledger.triage_log(attempt_id) == [note]
    assert ledger.claims() == {}


def test_triage_of_a_missing_attempt_is_not_found(ledger):
    for act in (
        lambda: ledger.claim("no-such-attempt", OPERATOR),
        lambda: ledger.release("no-such-attempt", OPERATOR),
        lambda: ledger.add_note("no-such-attempt", "hello", OPERATOR),
    ):
        with pytest.raises(AttemptNotFound):
            act()


def test_claims_and_notes_are_in_the_audit_trail_in_time_order(ledger):
    attempt_id = record(ledger, 500)
    ledger.claim(attempt_id, OPERATOR)
    ledger.add_event(attempt_id, RefundStatus.FAILED, "provider", failure_reason="no wallet")
    ledger.add_note(attempt_id, "wallet closed, asked for another", OPERATOR)
    rows = list(ledger.audit_rows())
    assert all(tuple(row) == AUDIT_FIELDS for row in rows)
    assert [(row["source"], row["status"]) for row in rows] == [
        ("intent", "pending"), ("claim", None), ("provider", "failed"), ("note", None),
    ]  # fmt: skip
    note = rows[-1]
    assert (note["note"], note["attempt_id"], note["amount"]) == (
        "wallet closed, asked for another", attempt_id, "500",
    )  # fmt: skip
    assert (note["client_account"], note["client_host"], note["client_ssh"]) == ("ama", "ops-1", "10.0.0.5:52314")
    assert note["recorded_by"] == (ledger.role or "ama")  # the login, or the OS account on SQLite
    later = rows[-1]["event_at"]
    assert [row["source"] for row in ledger.audit_rows(since=datetime.fromisoformat(later))] == ["note"]


def test_attempts_and_counts_filter_by_who_made_them(ledger):
    mine = record(ledger, 500)
    ledger.add_event(mine, RefundStatus.FAILED, "provider", failure_reason="no wallet")
    record(ledger, 500, retry_of=mine)
    assert [a.attempt_id for a in ledger.attempts(made_by=me(ledger))][1:] == [mine]
    assert made_by(ledger.get(mine)) == me(ledger)
    assert ledger.counts(made_by=me(ledger)) == ledger.counts()
    assert ledger.counts()[RefundStatus.PENDING] == 1 and ledger.counts()[RefundStatus.FAILED] == 0
    assert ledger.attempts(made_by="nobody-here") == []
    assert set(ledger.counts(made_by="nobody-here").values()) == {0}


def test_claims_and_notes_are_append_only(ledger):
    attempt_id = record(ledger, 500)
    ledger.add_note(attempt_id, "first", OPERATOR)
    for statement in ("UPDATE triage SET note = 'rewritten'", "DELETE FROM triage"):
        with pytest.raises(LedgerError, match="append-only"):
            ledger._write(lambda conn, statement=statement: conn.execute(statement))
    assert [entry.note for entry in ledger.triage_log(attempt_id)] == ["first"]


def test_a_claim_wakes_the_change_watch(ledger, open_ledger):
    attempt_id = record(ledger, 500)
    watch = ledger.change_watch()
    try:
        other = open_ledger()
        assert not watch.changed()
        other.claim(attempt_id, OPERATOR)
        deadline = datetime.now(UTC) + timedelta(seconds=2)
        while not watch.changed():
            assert datetime.now(UTC) < deadline, "the claim never reached the change watch"
            time.sleep(0.01)
    finally:
        watch.close()
