"""The ledger: schema and durability settings, append-only rules, the cap check, queries."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import pwd
import sqlite3
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from refund_tui import __version__
from refund_tui.core import ledger as ledger_module
from refund_tui.core.ledger import (
    AUDIT_FIELDS,
    AttemptNotFound,
    BatchRow,
    BatchRowRecorded,
    CapExceeded,
    Ledger,
    LedgerError,
    NewAttempt,
    Operator,
    RefundInFlight,
)
from refund_tui.core.ledger_schema import MIGRATIONS, SCHEMA_VERSION
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.notices import NoticeInbox
from refund_tui.providers.base import RefundRequest

OPERATOR = Operator(name="ama", uid=1001, hostname="ops-1", ssh_client="10.0.0.5:52314")


def new_attempt(
    amount: Money,
    payment: str = "tr_1",
    provider: ProviderName = ProviderName.NOVASEND,
    retry_of: str | None = None,
) -> NewAttempt:
    external = f"rtui-{uuid.uuid4().hex[:12]}"
    body = json.dumps(
        {"amount": amount.wire_number(), "reason": "Duplicate charge", "externalReference": external}
    )
    return NewAttempt(
        profile="sandbox",
        environment="sandbox",
        provider=provider,
        payment_reference=payment,
        amount=amount,
        phone="+2250755550101",
        country_id=None,
        reason="Duplicate charge",
        webhook_url=None,
        request=RefundRequest(
            provider=provider,
            payment_reference=payment,
            method="POST",
            path=f"/v1/payin/{payment}/refund",
            body=body,
            idempotency_key=str(uuid.uuid4()),
            external_reference=external,
            amount=amount,
        ),
        operator=OPERATOR,
        retry_of=retry_of,
    )


def xof(minor: int) -> Money:
    return Money(minor, "XOF")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ledger.sqlite3"


@pytest.fixture
def ledger(path: Path):
    with Ledger(path) as opened:
        yield opened


def record(ledger: Ledger, minor: int, limit: int = 10_000, **kwargs) -> str:
    attempt = ledger.record_attempt(
        new_attempt(xof(minor), **kwargs), limit=xof(limit), known_references=()
    )
    return attempt.attempt_id


# -- schema, durability, append-only --------------------------------------------------


def test_pragmas_schema_version_and_file_mode(ledger, path):
    pragma = ledger._conn.execute
    assert pragma("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert pragma("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert pragma("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert pragma("PRAGMA foreign_keys").fetchone()[0] == 1
    assert pragma("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reopening_keeps_data_and_schema(path):
    with Ledger(path) as first:
        attempt_id = record(first, 500)
    with Ledger(path) as again:
        assert again.get(attempt_id).amount == xof(500)
        assert again._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_pending_migrations_run_once_in_order(path, monkeypatch):
    Ledger(path).close()
    added = ("CREATE TABLE notes (id INTEGER PRIMARY KEY)", "INSERT INTO notes VALUES (7)")
    monkeypatch.setattr(ledger_module, "MIGRATIONS", (*MIGRATIONS, added))
    monkeypatch.setattr(ledger_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open finds nothing to do
        with Ledger(path) as upgraded:
            assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
            assert upgraded._conn.execute("SELECT id FROM notes").fetchall() == [(7,)]


def test_a_version_2_ledger_keeps_its_refunds_and_gains_the_notice_inbox(path, monkeypatch):
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:2])
    monkeypatch.setattr(ledger_module, "SCHEMA_VERSION", 2)
    # a version-2 program read no double_refunds table: the column stands in for it
    columns = ledger_module._ATTEMPT_COLUMNS
    monkeypatch.setattr(ledger_module, "_ATTEMPT_COLUMNS", columns[: columns.index("(SELECT")] + "NULL")
    with Ledger(path) as old:
        recorded = old.record_attempt(
            new_attempt(Money(1500, "XOF")), limit=Money(5000, "XOF"), known_references=()
        )
        assert old._conn.execute("PRAGMA user_version").fetchone()[0] == 2
    monkeypatch.undo()
    with Ledger(path) as upgraded:
        assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert upgraded.get(recorded.attempt_id).amount == Money(1500, "XOF")
        assert NoticeInbox(upgraded).recent() == []


def test_change_watch_sees_commits_from_other_connections(path):
    with Ledger(path) as ours, Ledger(path) as theirs:
        watch = ours.change_watch()
        try:
            assert not watch.changed()
            theirs.record_attempt(new_attempt(Money(100, "XOF")), limit=Money(500, "XOF"), known_references=())
            assert watch.changed()
            assert not watch.changed()  # reported once
        finally:
            watch.close()


def test_newer_schema_is_a_readable_error(path):
    Ledger(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerError, match="newer refund-tui .*upgrade refund-tui"):
        Ledger(path)


def test_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(LedgerError, match="not a readable refund-tui ledger"):
        Ledger(garbage)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(LedgerError, match="not a refund-tui ledger"):
        Ledger(other)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE attempts SET amount_minor = 1",
        "DELETE FROM attempts",
        "UPDATE events SET status = 'completed'",
        "DELETE FROM events",
    ],
)
def test_attempts_and_events_are_append_only(ledger, path, statement):
    record(ledger, 500)
    raw = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(statement)
    raw.close()
    assert len(ledger.attempts()) == 1


def test_busy_ledger_gives_a_readable_error(path):
    with Ledger(path, busy_timeout=0.1) as ledger:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(LedgerError, match="busy: another refund-tui process"):
                record(ledger, 500)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert ledger.attempts() == []


# -- recording ------------------------------------------------------------------------


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


def _compete(path: str, barrier, results) -> None:
    """Record refunds of one payment until the cap refuses; each is answered at once."""
    with Ledger(Path(path)) as ledger:
        barrier.wait()
        recorded = 0
        while True:
            try:
                attempt_id = record(ledger, 100, limit=1000, payment="tr_shared")
            except RefundInFlight:  # another process's refund has no answer yet
                continue
            except CapExceeded:
                break
            ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference=attempt_id)
            recorded += 1
        results.put(recorded)


def test_concurrent_processes_never_exceed_the_limit(path):
    Ledger(path).close()
    context = multiprocessing.get_context("fork")
    workers = 4
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=_compete, args=(str(path), barrier, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * workers
    assert sum(results.get(timeout=5) for _ in processes) == 10
    with Ledger(path) as ledger:
        recorded = ledger.attempts(payment_reference="tr_shared")
    total = sum(attempt.amount.minor for attempt in recorded)
    assert total == 1000


# -- events ---------------------------------------------------------------------------


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


# -- reading --------------------------------------------------------------------------


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
    monkeypatch.setattr(ledger_module, "_AUDIT_CHUNK", 2)  # exercise the chunked reading
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


# -- operator -------------------------------------------------------------------------


def test_operator_comes_from_the_password_database(monkeypatch):
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    operator = Operator.current(environ={"SSH_CONNECTION": "203.0.113.9 50022 10.0.0.1 22"})
    assert operator.name == pwd.getpwuid(os.geteuid()).pw_name != "mallory"
    assert operator.uid == os.geteuid()
    assert operator.ssh_client == "203.0.113.9:50022"
    assert Operator.current(environ={"SSH_CLIENT": "2001:db8::1 50022 22"}).ssh_client == (
        "[2001:db8::1]:50022"
    )
    assert Operator.current(environ={}).ssh_client is None


# -- contradictions, resend claims, retries -------------------------------------------------


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


def test_a_batch_row_is_recorded_once_with_its_intent(ledger):
    row = BatchRow("b" * 32, 7)
    first = ledger.record_attempt(
        dataclasses.replace(new_attempt(Money(100, "XOF")), batch_row=row),
        limit=Money(5000, "XOF"), known_references=(),
    )  # fmt: skip

    with pytest.raises(BatchRowRecorded) as again:
        ledger.record_attempt(
            dataclasses.replace(new_attempt(Money(100, "XOF")), batch_row=row),
            limit=Money(5000, "XOF"), known_references=(),
        )  # fmt: skip

    assert again.value.attempt_id == first.attempt_id
    assert len(ledger.attempts()) == 1  # the refused row left nothing behind
    assert ledger.batch_attempts("b" * 32) == {7: first.attempt_id}
    assert ledger.batch_attempts("c" * 32) == {}
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger._conn.execute("DELETE FROM batch_rows")
