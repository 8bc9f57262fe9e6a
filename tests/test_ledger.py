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
from refund_tui.core.notices import NoticeInbox
from refund_tui.ledgers import sqlite as ledger_module
from refund_tui.ledgers.sqlite import SqliteLedger
from refund_tui.ledgers.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from tests.ledger.factories import OPERATOR, new_attempt, record, xof


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


def test_a_version_2_ledger_keeps_its_refunds_and_gains_the_notice_inbox(path, monkeypatch):
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:2])
    monkeypatch.setattr(ledger_module, "SCHEMA_VERSION", 2)
    # a version-2 program read no double_refunds table: the column stands in for it
    monkeypatch.setattr(SqliteLedger, "_double_refunds_column", "NULL")
    with SqliteLedger(path) as old:
        recorded = old.record_attempt(
            new_attempt(Money(1500, "XOF")), limit=Money(5000, "XOF"), known_references=()
        )
        assert old._conn.execute("PRAGMA user_version").fetchone()[0] == 2
    monkeypatch.undo()
    with SqliteLedger(path) as upgraded:
        assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert upgraded.get(recorded.attempt_id).amount == Money(1500, "XOF")
        assert NoticeInbox(upgraded).recent() == []


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
