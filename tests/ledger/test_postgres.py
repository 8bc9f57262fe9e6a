"""What only the PostgreSQL ledger promises: the database enforces roles, identity and
append-only whatever the client does; setup is versioned and serialised; clear failures."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from refund_tui.core.ledger import BatchRow, LedgerError, NoticeOutcome
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.ledgers.postgres import PostgresLedger, schema_version, setup
from refund_tui.ledgers.postgres_schema import OPERATOR, RECEIVER, SCHEMA_VERSION, VIEWER
from tests.ledger.factories import OPERATOR as SOMEONE
from tests.ledger.factories import notice, record
from tests.postgres import login_role


@pytest.fixture
def owner(team_ledger_factory) -> PostgresLedger:
    return team_ledger_factory()


def raw(url: str, schema: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}")


def test_the_database_records_who_recorded_each_row(team_ledger_factory, postgres_database):
    operator_url = login_role(postgres_database, f"op_{uuid.uuid4().hex[:6]}", OPERATOR)
    ledger = team_ledger_factory(operator_url)
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference="rf_1")
    login = ledger.role
    assert login.endswith("_op_" + login.rsplit("_", 1)[1]) and login != "postgres"
    assert ledger.get(attempt_id).recorded_by == login
    assert [event.recorded_by for event in ledger.events(attempt_id)] == [login, login]

    with raw(operator_url, team_ledger_factory.schema) as conn:  # a modified client
        conn.execute(
            """INSERT INTO events (attempt_id, at, status, source, recorded_by)
            VALUES (%s, now(), 'processing', 'poll', 'somebody_else')""",
            (attempt_id,),
        )
    assert ledger.events(attempt_id)[-1].recorded_by == login


def test_a_viewer_reads_but_cannot_record(team_ledger_factory, postgres_database, owner):
    attempt_id = record(owner, 500)
    viewer = team_ledger_factory(login_role(postgres_database, f"view_{uuid.uuid4().hex[:6]}", VIEWER))
    assert viewer.get(attempt_id).amount.minor == 500
    with pytest.raises(LedgerError, match=f"refused role {viewer.role}: permission denied"):
        record(viewer, 100, payment="tr_viewer")
    with pytest.raises(LedgerError, match="permission denied"):
        viewer.add_event(attempt_id, RefundStatus.FAILED, "poll")
    assert [a.attempt_id for a in owner.attempts()] == [attempt_id]


def test_a_receiver_records_notices_and_nothing_else(team_ledger_factory, postgres_database, owner):
    attempt_id = record(owner, 500)
    owner.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference="rf_r")
    receiver = team_ledger_factory(login_role(postgres_database, f"recv_{uuid.uuid4().hex[:6]}", RECEIVER))
    early = notice(RefundStatus.COMPLETED, reference="rf_unknown_yet")
    assert receiver.receive_notice(early, "{}") is NoticeOutcome.KEPT
    completed = notice(RefundStatus.COMPLETED, reference="rf_r")
    assert receiver.receive_notice(completed, "{}") is NoticeOutcome.APPLIED
    assert owner.events(attempt_id)[-1].recorded_by == receiver.role
    with pytest.raises(LedgerError, match="permission denied"):
        record(receiver, 100)
    with pytest.raises(LedgerError, match="may record only webhook events"):
        receiver.add_event(attempt_id, RefundStatus.REVERSED, "poll")
    other = record(owner, 100)
    owner.add_event(other, RefundStatus.PROCESSING, "provider", provider_reference="rf_unknown_yet")
    assert receiver.reconcile_notices() == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE attempts SET amount_minor = 1",
        "DELETE FROM attempts",
        "UPDATE events SET status = 'completed'",
        "DELETE FROM events",
        "TRUNCATE events CASCADE",
        "UPDATE notices SET outcome = 'applied'",
        "DELETE FROM notices",
        "UPDATE current_state SET status = 'completed'",
        "UPDATE batch_rows SET row = 2",
        "DELETE FROM batch_rows",
        "TRUNCATE finding_acks",
        "UPDATE finding_acks SET note = 'nothing'",
        "DELETE FROM finding_acks",
    ],
)
@pytest.mark.parametrize("who", ["operator", "owner"])
def test_history_cannot_be_rewritten(team_ledger_factory, postgres_database, owner, statement, who):
    attempt_id = record(owner, 500, batch_row=BatchRow("b" * 32, 1))
    owner.receive_notice(notice(RefundStatus.COMPLETED, reference="rf_kept"), "{}")
    owner.acknowledge_finding(
        "f1", kind="missing", provider=ProviderName.NOVASEND, payment_reference="tr_1",
        note="checked", operator=SOMEONE,
    )  # fmt: skip
    url = postgres_database
    if who == "operator":
        url = login_role(postgres_database, f"op_{uuid.uuid4().hex[:6]}", OPERATOR, RECEIVER)
    with raw(url, team_ledger_factory.schema) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute(statement)
    if who == "operator":
        assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege)
    else:
        assert "refused" in str(refused.value)
    assert owner.get(attempt_id).status is RefundStatus.PENDING
    assert len(owner.events(attempt_id)) == 1 and len(owner.recent_notices()) == 1


def test_opening_needs_the_schema_set_up(postgres_database):
    with pytest.raises(LedgerError, match="no refund-tui schema 'nowhere' yet: .*ledger setup"):
        PostgresLedger(postgres_database, schema="nowhere")


def test_concurrent_setups_migrate_once(postgres_database):
    schema = f"t_{uuid.uuid4().hex[:12]}"
    results, problems = [], []

    def run() -> None:
        try:
            results.append(setup(postgres_database, schema=schema))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            problems.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert problems == []
    assert sorted(results) == [(0, SCHEMA_VERSION)] + [(SCHEMA_VERSION, SCHEMA_VERSION)] * 2
    with raw(postgres_database, schema) as conn:
        assert schema_version(conn, schema) == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION


def test_an_unreachable_server_is_one_line_naming_where_and_who_never_the_password():
    with pytest.raises(LedgerError) as caught:
        PostgresLedger("postgresql://ama:hunter2@127.0.0.1:1/ledger")
    message = str(caught.value)
    assert message.startswith("cannot reach the team ledger (role ama at 127.0.0.1:1/ledger)")
    assert "hunter2" not in message and "\n" not in message


def test_the_change_watch_reconnects_and_reports_a_change_after_losing_its_connection(owner):
    from tests.ledger.test_contract import changed_within

    watch = owner.change_watch()
    try:
        with raw(owner.url, owner.schema) as admin:
            killed = admin.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND query ILIKE 'LISTEN%%'"""
            ).fetchall()
        assert killed and all(ok for (ok,) in killed)
        assert changed_within(watch, 5.0)  # re-opened: whatever was missed must be re-read
        record(owner, 100)
        assert changed_within(watch)
    finally:
        watch.close()


def test_killed_backends_are_replaced_and_a_write_cut_off_is_refused_cleanly(owner):
    attempt_id = record(owner, 100)

    def kill_ledger_backends() -> int:
        with raw(owner.url, owner.schema) as admin:
            return len(admin.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE application_name LIKE 'refund-tui%%' AND pid != pg_backend_pid()"""
            ).fetchall())  # fmt: skip

    assert kill_ledger_backends() >= 1
    assert owner.get(attempt_id).amount.minor == 100  # a fresh connection, no error

    def cut_off(conn):  # the backend dies mid-transaction, after the cap check
        conn.execute("SELECT 1 FROM attempts LIMIT 1")
        kill_ledger_backends()
        conn.execute("SELECT 1")

    with pytest.raises(LedgerError, match="cannot be reached"):
        owner._write(cut_off)
    assert [a.attempt_id for a in owner.attempts()] == [attempt_id]
    record(owner, 100, payment="tr_2")
    assert len(owner.attempts()) == 2


def test_the_audit_export_names_the_login_that_recorded_each_event(team_ledger_factory, postgres_database):
    ledger = team_ledger_factory(login_role(postgres_database, f"op_{uuid.uuid4().hex[:6]}", OPERATOR))
    attempt_id = record(ledger, 500)
    ledger.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference="rf_a")
    rows = list(ledger.audit_rows())
    assert [(row["status"], row["recorded_by"]) for row in rows] == [
        ("pending", ledger.role), ("processing", ledger.role),
    ]  # fmt: skip


def test_a_superuser_editing_an_event_by_hand_is_caught_by_verify(owner, team_ledger_factory, postgres_database):
    attempt_id = record(owner, 500)
    owner.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference="rf_1")
    owner.add_event(attempt_id, RefundStatus.COMPLETED, "poll")
    _, edited, _ = [row["event_id"] for row in owner.audit_rows()]
    with raw(postgres_database, team_ledger_factory.schema) as conn:  # as postgres, the superuser
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("UPDATE events SET provider_reference = 'rf_mine' WHERE id = %s", (edited,))
        conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        conn.execute("UPDATE events SET provider_reference = 'rf_mine' WHERE id = %s", (edited,))
        conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    broken = owner.verify_chain().broken
    assert (broken.table, broken.event_id, broken.seq) == ("events", edited, 3)
    assert "contents differ from what was recorded" in broken.message


def test_no_role_moves_the_chain_head_or_writes_its_own_link(team_ledger_factory, postgres_database):
    operator_url = login_role(postgres_database, f"op_{uuid.uuid4().hex[:6]}", OPERATOR)
    ledger = team_ledger_factory(operator_url)
    attempt_id = record(ledger, 500)
    with raw(operator_url, team_ledger_factory.schema) as conn:
        for statement in ("UPDATE chain_head SET seq = 0",
                          "SELECT chain_link('events', 'x')"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute(  # a modified client sending its own link: the trigger writes the real one
            """INSERT INTO events (attempt_id, at, status, source, chain_seq, prev_hash, row_hash)
            VALUES (%s, now(), 'processing', 'poll', 1, 'forged', 'forged')""",
            (attempt_id,),
        )
    verdict = ledger.verify_chain()
    assert (verdict.count, verdict.broken) == (3, None)


def test_setup_chains_the_rows_a_ledger_had_before_the_chain(postgres_database, monkeypatch):
    from refund_tui.ledgers import postgres as postgres_module

    schema = f"t_{uuid.uuid4().hex[:12]}"
    before = SCHEMA_VERSION - 1
    monkeypatch.setattr(postgres_module, "MIGRATIONS", postgres_module.MIGRATIONS[:before])
    monkeypatch.setattr(postgres_module, "SCHEMA_VERSION", before)
    assert setup(postgres_database, schema=schema) == (0, before)
    with raw(postgres_database, schema) as conn:  # rows as that version's refund-tui wrote them
        conn.execute(
            """INSERT INTO attempts (attempt_id, created_at, profile, environment, provider,
            payment_reference, amount_minor, currency, phone, reason, external_reference,
            request_method, request_path, request_body, operator_name, operator_uid, hostname,
            pid, app_version) VALUES ('a1', now(), 'p', 'live', 'novasend', 'tr_1', 100, 'XOF',
            '+2250755550101', 'r', 't1', 'POST', '/', '{}', 'ama', 1001, 'ops-1', 1, '0.0.9')"""
        )
        for status in ("pending", "completed"):
            conn.execute("INSERT INTO events (attempt_id, at, status, source) VALUES ('a1', now(), %s, 'poll')", (status,))
        conn.execute("INSERT INTO batch_rows (batch_id, row, attempt_id) VALUES ('b1', 1, 'a1')")
    monkeypatch.undo()
    assert setup(postgres_database, schema=schema) == (before, SCHEMA_VERSION)
    with PostgresLedger(postgres_database, schema=schema) as upgraded:
        verdict = upgraded.verify_chain()
        assert (verdict.count, verdict.broken) == (4, None)
        assert [row["chain_seq"] for row in upgraded.audit_rows()] == [2, 3]
        record(upgraded, 100, payment="tr_2")
        assert (upgraded.verify_chain().count, upgraded.verify_chain().broken) == (6, None)


def test_a_client_faking_its_transactions_newest_link_only_breaks_its_own_row(team_ledger_factory, postgres_database):
    operator_url = login_role(postgres_database, f"op_{uuid.uuid4().hex[:6]}", OPERATOR)
    ledger = team_ledger_factory(operator_url)
    attempt_id = record(ledger, 500)
    with raw(operator_url, team_ledger_factory.schema) as conn, conn.transaction():
        txid = conn.execute("SELECT txid_current()").fetchone()[0]
        conn.execute(f"SET LOCAL refund_tui.chain_tip = '{txid} 7 forged'")
        conn.execute(
            "INSERT INTO events (attempt_id, at, status, source) VALUES (%s, now(), 'processing', 'poll')",
            (attempt_id,),
        )
    broken = ledger.verify_chain().broken
    [_, forged] = [row for row in ledger.audit_rows()]
    assert (broken.event_id, forged["recorded_by"]) == (forged["event_id"], ledger.role)
    assert "link 3 is missing" in broken.message
