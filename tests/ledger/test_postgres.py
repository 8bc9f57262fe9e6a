"""What only the PostgreSQL ledger promises: the database enforces roles, identity and
append-only whatever the client does; setup is versioned and serialised; clear failures."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from refund_tui.core.ledger import BatchRow, ClaimHeld, LedgerError, NoticeOutcome
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
        "UPDATE triage SET note = 'nothing happened'",
        "DELETE FROM triage",
        "TRUNCATE triage",
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
    owner.claim(attempt_id, SOMEONE)
    owner.add_note(attempt_id, "on it", SOMEONE)
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
    assert [entry.note for entry in owner.triage_log(attempt_id)] == [None, "on it"]


def test_two_operators_see_each_others_claims_and_the_database_names_both(
    team_ledger_factory, postgres_database, owner
):
    """A claims, B sees it and takes it over only explicitly; who did what is the database's
    word (a modified client cannot put another name on a claim), and a viewer is refused."""
    attempt_id = record(owner, 500)
    a, b = (
        team_ledger_factory(login_role(postgres_database, f"{name}_{uuid.uuid4().hex[:6]}", OPERATOR))
        for name in ("a", "b")
    )
    claim = a.claim(attempt_id, SOMEONE)
    assert (claim.who, claim.operator) == (a.role, SOMEONE)
    assert b.claims() == {attempt_id: claim}
    with pytest.raises(ClaimHeld, match=f"^{a.role} has been on refund"):
        b.claim(attempt_id, SOMEONE)
    with pytest.raises(ClaimHeld):
        b.release(attempt_id, SOMEONE)
    taken = b.claim(attempt_id, SOMEONE, take_over=True)
    assert (taken.who, taken.took_over) == (b.role, a.role)
    assert a.claims()[attempt_id] == taken

    with raw(a.url, team_ledger_factory.schema) as conn:  # a modified client lies about both
        conn.execute(
            """INSERT INTO triage (attempt_id, at, action, took_over, operator_name,
            operator_uid, hostname, recorded_by)
            VALUES (%s, now(), 'claim', NULL, 'x', 0, 'x', 'somebody_else')""",
            (attempt_id,),
        )
    forged = owner.triage_log(attempt_id)[-1]
    assert (forged.who, forged.took_over) == (a.role, b.role)

    viewer = team_ledger_factory(login_role(postgres_database, f"view_{uuid.uuid4().hex[:6]}", VIEWER))
    for act in (
        lambda: viewer.claim(attempt_id, SOMEONE, take_over=True),
        lambda: viewer.add_note(attempt_id, "seen", SOMEONE),
    ):
        with pytest.raises(LedgerError, match=f"refused role {viewer.role}: permission denied for table triage"):
            act()
    assert len(owner.triage_log(attempt_id)) == 3


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
                WHERE application_name LIKE 'refund-tui%%' AND pid != pg_backend_pid()
                AND datname = current_database()"""
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


def _waiting_for_a_lock(url: str, count: int) -> None:
    """Until ``count`` refund-tui backends wait for an advisory lock (or 10 s)."""
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute(
            """SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
            WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name LIKE 'refund-tui%%'
            AND a.datname = current_database()"""
        ).fetchone()[0] < count:
            assert time.monotonic() < deadline, "the ledger never waited for the lock"
            time.sleep(0.01)


def _in_thread(call) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as error:  # noqa: BLE001 - the test looks at what it was
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_serialization_failure_is_retried_and_never_shown(team_ledger_factory, postgres_database, caplog):
    """On a server whose transactions run SERIALIZABLE (a DBA's default_transaction_isolation),
    two hosts' cap checks of one payment, both taking their snapshot while another host held
    the payment's lock, conflict: PostgreSQL aborts the second with 40001. It is retried and
    answers as the cap rules say (the first refund is in flight), never as a ledger failure."""
    login_url = login_role(postgres_database, f"ser_{uuid.uuid4().hex[:6]}", OPERATOR)
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("ALTER ROLE {} SET default_transaction_isolation = 'serializable'")
                      .format(psycopg.sql.Identifier(login_url.split("//")[1].split("@")[0])))  # fmt: skip
    hosts = [team_ledger_factory(login_url) for _ in range(2)]
    caplog.set_level("INFO", logger="refund_tui.ledger")
    with psycopg.connect(postgres_database) as blocker:  # a third host, in a transaction
        blocker.execute("SELECT pg_advisory_xact_lock(hashtextextended('payment:novasend:tr_1', 0))")
        racing = [_in_thread(lambda host=host: record(host, 100)) for host in hosts]
        _waiting_for_a_lock(postgres_database, 2)
    for thread, _ in racing:
        thread.join(timeout=30)
    outcomes = [outcome for _, [outcome] in racing]
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["RefundInFlight", "str"]
    [recorded] = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert [a.attempt_id for a in hosts[0].attempts()] == [recorded]
    retried = [r.getMessage() for r in caplog.records if r.name == "refund_tui.ledger"]
    assert retried and all("(40001, try 1)" in message for message in retried)


def test_a_deadlock_is_retried_and_never_shown(owner, postgres_database, caplog):
    """Another host holds the payment's lock and then wants the batch row's, which a batch
    refund holds while it waits for the payment: a deadlock. PostgreSQL aborts the refund's
    transaction (its check runs first: deadlock_timeout 1 s against the other's 30 s); it is
    retried once the other host is done, and recorded."""
    caplog.set_level("INFO", logger="refund_tui.ledger")
    row = BatchRow("d" * 32, 1)
    with psycopg.connect(postgres_database) as other:
        other.execute("SET LOCAL deadlock_timeout = '30s'")
        other.execute("SELECT pg_advisory_xact_lock(hashtextextended('payment:novasend:tr_1', 0))")
        thread, outcome = _in_thread(lambda: record(owner, 100, batch_row=row))
        _waiting_for_a_lock(postgres_database, 1)
        other.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"batch:{row.batch_id}:1",))
    thread.join(timeout=30)
    [attempt_id] = outcome
    assert owner.batch_attempts(row.batch_id) == {1: attempt_id}
    retried = [r.getMessage() for r in caplog.records if r.name == "refund_tui.ledger"]
    assert len(retried) == 1 and "(40P01, try 1)" in retried[0]


def test_two_receivers_given_the_same_signed_notices_at_once_apply_each_once(team_ledger_factory, postgres_database):
    """Two webhook receivers (real HTTP servers, each with its own receiver login and pool) on
    one team ledger; every signed notice delivered twice to each, all at once: each is
    recorded and applied once, the rest answered as duplicates, statuses never go back."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    from tests.notices import deliver, notice_body, running_receiver

    owner = team_ledger_factory()
    attempts = []
    for number, provider in enumerate([ProviderName.NOVASEND, ProviderName.VESICASH] * 2):
        attempt_id = record(owner, 100, payment=f"tr_{number}", provider=provider)
        owner.add_event(attempt_id, RefundStatus.PROCESSING, "provider", provider_reference=f"rf_{number}")
        attempts.append(owner.get(attempt_id))
    notices = [(a.provider, notice_body(a, state)) for a in attempts for state in ("processing", "completed")]
    receiver_url = login_role(postgres_database, f"recv_{uuid.uuid4().hex[:6]}", RECEIVER)
    with running_receiver(team_ledger_factory(receiver_url)) as first, \
            running_receiver(team_ledger_factory(receiver_url)) as second:  # fmt: skip
        deliveries = [(url, provider, body) for provider, body in notices for url in (first, second) * 2]
        random.shuffle(deliveries)
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda d: deliver(*d), deliveries))
    assert {answer.status_code for answer in answers} == {200}
    outcomes = [answer.json()["outcome"] for answer in answers]
    assert outcomes.count(NoticeOutcome.DUPLICATE.value) == len(notices) * 3
    assert len(owner.recent_notices(limit=100)) == len(notices)
    for attempt in attempts:
        assert owner.get(attempt.attempt_id).status is RefundStatus.COMPLETED
        webhook = [e.status for e in owner.events(attempt.attempt_id) if e.source == "webhook"]
        assert webhook in ([RefundStatus.COMPLETED], [RefundStatus.PROCESSING, RefundStatus.COMPLETED])
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
    before = 4  # the version before the chain (_V5), then every later migration
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


def test_a_client_faking_its_transactions_newest_link_is_refused(team_ledger_factory, postgres_database):
    """A forged tip once broke the client's own row (and, set after an insert, moved the head
    anywhere at commit): it is refused now, and the chain stays whole."""
    operator_url = login_role(postgres_database, f"op_{uuid.uuid4().hex[:6]}", OPERATOR)
    ledger = team_ledger_factory(operator_url)
    attempt_id = record(ledger, 500)
    with raw(operator_url, team_ledger_factory.schema) as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege, match="not the newest link"
    ), conn.transaction():
        txid = conn.execute("SELECT txid_current()").fetchone()[0]
        conn.execute(f"SET LOCAL refund_tui.chain_tip = '{txid} 7 forged'")
        conn.execute(
            "INSERT INTO events (attempt_id, at, status, source) VALUES (%s, now(), 'processing', 'poll')",
            (attempt_id,),
        )
    assert ledger.verify_chain().broken is None
