"""The tamper-evident trail on every adapter: an intact chain verifies; a row edited, deleted
or inserted by hand (triggers set aside, as the database's superuser or the file's owner
could) is reported at the right record."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable

import psycopg
import pytest

from refund_tui.core.ledger import BatchRow
from refund_tui.core.models import ProviderName, RefundStatus
from tests.ledger.factories import OPERATOR, LedgerSpec, notice, record


def by_hand(spec: LedgerSpec) -> Callable[[str], None]:
    """Runs SQL on the ledger with its triggers out of the way: on PostgreSQL as the
    superuser in replication mode (no trigger fires), on SQLite after dropping them."""

    def run(statement: str) -> None:
        if spec.kind == "sqlite":
            with sqlite3.connect(spec.location) as conn:
                for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger'").fetchall():
                    conn.execute(f"DROP TRIGGER {name}")
                conn.execute(statement)
            return
        with psycopg.connect(spec.location, autocommit=True, options=f"-c search_path={spec.schema}") as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
            conn.execute("SET session_replication_role = replica")
            conn.execute(statement)

    return run


def busy(ledger) -> list[str]:
    """A ledger with one of each chained record; the attempt ids."""
    first = record(ledger, 500, batch_row=BatchRow("b" * 64, 1))
    ledger.add_event(first, RefundStatus.PROCESSING, "provider", provider_reference="rf_1",
                     note="line one\nline two |3:abc|-")  # fmt: skip
    ledger.receive_notice(notice(RefundStatus.COMPLETED, reference="rf_1"), '{"é": "ünïcode"}')
    ledger.receive_notice(notice(RefundStatus.COMPLETED, reference="rf_later"), "{}")  # kept
    ledger.record_double_refund(first, "rf_1", "rf_1b", "executed twice")
    ledger.acknowledge_finding("f1", kind="missing", provider=ProviderName.NOVASEND,
                               payment_reference="tr_1", note="=checked", operator=OPERATOR)  # fmt: skip
    second = record(ledger, 200, payment="tr_2")
    ledger.add_event(second, RefundStatus.PENDING, "provider", provider_reference="rf_later")
    ledger.reconcile_notices()  # a kept notice matched later stays in the chain
    ledger.record_decision(second, "refused", "resend refused: the record shows its refund")
    return [first, second]


def event_ids(ledger, attempt_id: str) -> list[int]:
    return [row["event_id"] for row in ledger.audit_rows() if row["attempt_id"] == attempt_id]


def test_an_intact_chain_verifies_and_counts_every_record(ledger):
    busy(ledger)
    verdict = ledger.verify_chain()
    assert verdict.broken is None
    # 2 attempts, 8 events (intent x2, processing, completed, flag, pending, completed on the
    # matched notice, decision), 2 notices, 1 double refund, 1 batch row, 1 acknowledgement
    assert verdict.count == 15
    rows = list(ledger.audit_rows())
    assert rows[-1]["row_hash"] == verdict.head
    assert [row["chain_seq"] for row in rows] == sorted(row["chain_seq"] for row in rows)
    assert all(row["prev_hash"] and len(row["row_hash"]) == 64 for row in rows)


def test_an_edited_event_is_reported_with_its_id(ledger, spec):
    first, _ = busy(ledger)
    target = event_ids(ledger, first)[1]
    by_hand(spec)(f"UPDATE events SET note = 'nothing to see' WHERE id = {target}")
    broken = ledger.verify_chain().broken
    assert (broken.table, broken.event_id) == ("events", target)
    assert broken.message.startswith(f"the chain breaks at event {target} (link ")
    assert "contents differ from what was recorded" in broken.message


def test_an_edited_amount_is_reported_at_its_attempt(ledger, spec):
    _, second = busy(ledger)
    by_hand(spec)(f"UPDATE attempts SET amount_minor = 20000 WHERE attempt_id = '{second}'")
    broken = ledger.verify_chain().broken
    assert (broken.table, broken.key, broken.event_id) == ("attempts", second, None)


def test_a_deleted_event_is_reported_where_the_chain_resumes(ledger, spec):
    first, _ = busy(ledger)
    deleted, following = event_ids(ledger, first)[1:3]
    by_hand(spec)(f"DELETE FROM events WHERE id = {deleted}")
    broken = ledger.verify_chain().broken
    assert broken.event_id == following
    assert re.search(r"\(link \d+\): link \d+ is missing after .* \(a record was deleted\)$", broken.message)


def test_deleting_the_newest_records_is_seen_through_the_head(ledger, spec):
    _, second = busy(ledger)
    newest = event_ids(ledger, second)[-1]
    count = ledger.verify_chain().count
    by_hand(spec)(f"DELETE FROM events WHERE id = {newest}")
    assert ledger.verify_chain().broken.message == (
        f"the chain breaks: the newest 1 record(s) after link {count - 1} are missing (deleted)"
    )


def test_an_inserted_event_is_reported(ledger, spec):
    first, _ = busy(ledger)
    [event_id] = event_ids(ledger, first)[:1]
    columns = "attempt_id, at, status, source, chain_seq, prev_hash, row_hash"
    by_hand(spec)(  # a copy of the first event's link: the row itself is new
        f"""INSERT INTO events ({columns}) SELECT attempt_id, at, 'completed', 'poll', chain_seq + 1000,
        prev_hash, row_hash FROM events WHERE id = {event_id}"""
    )
    broken = ledger.verify_chain().broken
    assert broken.table == "events" and broken.event_id > event_id
    assert "is missing" in broken.message or "does not follow" in broken.message


def test_a_row_inserted_without_a_link_is_not_in_the_chain(ledger, spec):
    first, _ = busy(ledger)
    insert = f"INSERT INTO events (attempt_id, at, status, source) VALUES ('{first}', now(), 'completed', 'poll')"
    if spec.kind == "postgres":  # the link columns are NOT NULL there
        with pytest.raises(psycopg.errors.NotNullViolation):
            by_hand(spec)(insert)
        return
    by_hand(spec)(insert.replace("now()", "'x'"))
    broken = ledger.verify_chain().broken
    assert broken.table == "events" and "not in the chain" in broken.message


def test_claims_and_notes_are_links_and_an_edited_note_is_reported(ledger, spec):
    first, _ = busy(ledger)
    ledger.claim(first, OPERATOR)
    ledger.add_note(first, "wallet closed, asked for another", OPERATOR)
    assert (ledger.verify_chain().count, ledger.verify_chain().broken) == (17, None)
    by_hand(spec)("UPDATE triage SET note = 'all fine' WHERE action = 'note'")
    broken = ledger.verify_chain().broken
    assert (broken.table, broken.event_id) == ("triage", None)
    assert "contents differ from what was recorded" in broken.message
