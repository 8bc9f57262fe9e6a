"""The SQLite adapter: file, durability settings, migrations, append-only triggers, busy files.

What every adapter does alike is in tests/ledger/test_contract.py."""

from __future__ import annotations

import os
import pwd
import sqlite3
import stat
from pathlib import Path

import pytest

from refund_tui.core.ledger import BatchRow, LedgerError, Operator
from refund_tui.core.models import ProviderName
from refund_tui.core.money import Money
from refund_tui.ledgers import sqlite as ledger_module
from refund_tui.ledgers.sqlite import SqliteLedger
from refund_tui.ledgers.importing import ATTEMPT_COLUMNS
from refund_tui.ledgers.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from tests.ledger.factories import OPERATOR, record, xof


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ledger.sqlite3"


@pytest.fixture
def ledger(path: Path):
    with SqliteLedger(path) as opened:
        yield opened


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
    with SqliteLedger(path) as first:
        attempt_id = record(first, 500)
    with SqliteLedger(path) as again:
        assert again.get(attempt_id).amount == xof(500)
        assert again._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_pending_migrations_run_once_in_order(path, monkeypatch):
    SqliteLedger(path).close()
    added = ("CREATE TABLE notes (id INTEGER PRIMARY KEY)", "INSERT INTO notes VALUES (7)")
    monkeypatch.setattr(ledger_module, "MIGRATIONS", (*MIGRATIONS, added))
    monkeypatch.setattr(ledger_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open finds nothing to do
        with SqliteLedger(path) as upgraded:
            assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
            assert upgraded._conn.execute("SELECT id FROM notes").fetchall() == [(7,)]


def _ledger_before_the_chain(path: Path) -> str:
    """A ledger at the schema before the hash chain, filled by raw SQL as that version's
    refund-tui did: an attempt, two events, a notice, a double refund, a batch row and an
    acknowledgement. Its attempt id."""
    before = SCHEMA_VERSION - 1
    path.parent.mkdir(parents=True)
    attempt_id = "0f0e0d0c-0000-4000-8000-000000000001"
    at = "2026-01-02T03:04:05.000006+00:00"
    with sqlite3.connect(path) as raw:
        for migration in MIGRATIONS[:before]:
            for statement in migration:
                raw.execute(statement)
        raw.execute(f"PRAGMA user_version = {before}")
        columns = ", ".join(ATTEMPT_COLUMNS)
        raw.execute(
            f"INSERT INTO attempts ({columns}) VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})",
            (attempt_id, at, "sandbox", "sandbox", "novasend", "tr_1", 1500, "XOF", "+2250755550101",
             None, "Duplicate charge", None, "key-1", "rtui-1", "POST", "/v1/refund", "{}", "ama", 1001,
             "ops-1", None, 42, "0.0.9", None),
        )  # fmt: skip
        for status, reference in (("pending", None), ("completed", "rf_1")):
            raw.execute(
                "INSERT INTO events (attempt_id, at, status, source, provider_reference) VALUES (?, ?, ?, 'poll', ?)",
                (attempt_id, at, status, reference),
            )
        raw.execute(
            """INSERT INTO notices (received_at, provider, identity, event, outcome, body)
            VALUES (?, 'novasend', 'evt_1', 'refund.updated', 'kept', '{}')""",
            (at,),
        )
        raw.execute("INSERT INTO double_refunds (attempt_id, found_at, provider_reference, second_reference) "
                    "VALUES (?, ?, 'rf_1', 'rf_2')", (attempt_id, at))  # fmt: skip
        raw.execute("INSERT INTO batch_rows VALUES ('b1', 1, ?)", (attempt_id,))
        raw.execute("INSERT INTO finding_acks (finding_id, kind, provider, payment_reference, note, acked_at, "
                    "operator_name, hostname) VALUES ('f1', 'k', 'novasend', 'tr_1', 'ok', ?, 'ama', 'ops-1')", (at,))  # fmt: skip
    return attempt_id


def test_a_ledger_from_before_the_chain_keeps_its_rows_and_chains_them_in_order(path):
    attempt_id = _ledger_before_the_chain(path)
    with SqliteLedger(path) as upgraded:
        assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert upgraded.get(attempt_id).amount == Money(1500, "XOF")
        verdict = upgraded.verify_chain()
        assert (verdict.count, verdict.broken) == (7, None)
        order = upgraded._conn.execute(
            "SELECT 'attempts', chain_seq FROM attempts UNION ALL SELECT 'events', chain_seq FROM events "
            "UNION ALL SELECT 'finding_acks', chain_seq FROM finding_acks ORDER BY 2"
        ).fetchall()
        assert order == [("attempts", 1), ("events", 2), ("events", 3), ("finding_acks", 7)]
        record(upgraded, 100, payment="tr_new")  # new rows join the chain where it ended
        assert upgraded.verify_chain() == type(verdict)(9, upgraded.verify_chain().head, None)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):  # the triggers are back
            upgraded._conn.execute("UPDATE events SET note = 'x'")


def test_newer_schema_is_a_readable_error(path):
    SqliteLedger(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerError, match="newer refund-tui .*upgrade refund-tui"):
        SqliteLedger(path)


def test_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(LedgerError, match="not a readable refund-tui ledger"):
        SqliteLedger(garbage)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(LedgerError, match="not a refund-tui ledger"):
        SqliteLedger(other)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE attempts SET amount_minor = 1",
        "DELETE FROM attempts",
        "UPDATE events SET status = 'completed'",
        "DELETE FROM events",
        "UPDATE batch_rows SET row = 2",
        "DELETE FROM batch_rows",
        "UPDATE finding_acks SET note = 'nothing'",
        "DELETE FROM finding_acks",
    ],
)
def test_attempts_and_events_are_append_only(ledger, path, statement):
    record(ledger, 500, batch_row=BatchRow("b" * 32, 1))
    ledger.acknowledge_finding(
        "f1", kind="missing", provider=ProviderName.NOVASEND, payment_reference="tr_1",
        note="checked", operator=OPERATOR,
    )  # fmt: skip
    raw = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(statement)
    raw.close()
    assert len(ledger.attempts()) == 1


def test_busy_ledger_gives_a_readable_error(path):
    with SqliteLedger(path, busy_timeout=0.1) as ledger:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(LedgerError, match="busy: another refund-tui process"):
                record(ledger, 500)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert ledger.attempts() == []


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


def test_a_group_shared_folder_gets_group_writable_files_wal_included(tmp_path):
    folder = tmp_path / "team"
    folder.mkdir()
    folder.chmod(0o2770)  # setgid: new files take the folder's group
    path = folder / "ledger.sqlite3"
    with SqliteLedger(path) as ledger:
        record(ledger, 500)
        made = sorted(p.name for p in folder.iterdir())
        assert made == ["ledger.sqlite3", "ledger.sqlite3-shm", "ledger.sqlite3-wal"]
        assert {stat.S_IMODE((folder / name).stat().st_mode) for name in made} == {0o660}
        assert {(folder / name).stat().st_gid for name in made} == {folder.stat().st_gid}


def test_a_private_folder_keeps_the_ledger_private(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o700)
    with SqliteLedger(folder / "ledger.sqlite3") as ledger:
        record(ledger, 500)
    assert stat.S_IMODE((folder / "ledger.sqlite3").stat().st_mode) == 0o600
