"""An adversarial review of four eyes, daily limits and the chain on the team ledger: a
modified client holding only the operator role, speaking raw SQL to the real PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from refund_tui.core.approvals import ApprovalRules, Decision
from refund_tui.core.models import RefundStatus
from refund_tui.ledgers.postgres import set_rules
from tests.ledger.factories import OPERATOR as SOMEONE
from tests.ledger.factories import record, xof
from tests.ledger.test_approvals import payment, raw, team  # noqa: F401 (fixture)

_INSERT_ATTEMPT = """INSERT INTO attempts (attempt_id, created_at, profile, environment, provider,
    payment_reference, amount_minor, currency, phone, reason, external_reference, request_method,
    request_path, request_body, operator_name, operator_uid, hostname, pid, app_version)
    VALUES (%s, {created}, 'p', 'sandbox', 'novasend', %s, %s, 'XOF', '+2250700000000', 'r',
    'tag', 'POST', '/x', %s, 'ama', 1, 'h', 1, 'x')"""


def _attempt(conn, minor: int, created: str = "now()") -> str:
    attempt_id = uuid.uuid4().hex
    conn.execute(
        _INSERT_ATTEMPT.format(created=created),
        (attempt_id, payment(), minor, f'{{"amount": {minor}}}'),
    )
    return attempt_id


def _sendable(conn, attempt_id: str) -> None:
    conn.execute(
        "INSERT INTO events (attempt_id, at, status, source) VALUES (%s, now(), 'pending', 'send')",
        (attempt_id,),
    )


@pytest.mark.parametrize("shadow", ["approval_rules", "approvals"])
def test_a_temporary_table_cannot_shadow_the_rules_or_the_decisions(team, shadow):
    """The rules' triggers name their tables unqualified: a session's temporary table of the
    same name is found first, unless each function pins its search_path with pg_temp last."""
    operator = team["operator"]
    waiting = record(operator, 3000, payment=payment())
    with raw(operator) as conn:
        if shadow == "approvals":  # a decision of one's own
            conn.execute("CREATE TEMP TABLE approvals AS SELECT %s::text AS attempt_id, 'approved' AS decision",
                         (waiting,))  # fmt: skip
            with pytest.raises(psycopg.Error, match="awaits approval"):
                _sendable(conn, waiting)
        else:  # no rules at all: a large intent recorded as sendable at once
            conn.execute(f"CREATE TEMP TABLE approval_rules (LIKE {operator.schema}.approval_rules)")
            with pytest.raises(psycopg.Error, match="awaiting approval"), conn.transaction():
                _sendable(conn, _attempt(conn, 2000))
    assert operator.get(waiting).status is RefundStatus.AWAITING_APPROVAL


def test_intents_recorded_without_their_first_event_still_count_against_the_daily_limit(team):
    """The limit sums attempts joined to their state: attempts recorded first, each alone
    under the limit, then all made sendable, must not pass it."""
    operator = team["operator"]
    with raw(operator) as conn:
        first = _attempt(conn, 1000)
        with pytest.raises(psycopg.Error, match="over the daily limit"):
            for _ in range(5):
                _attempt(conn, 1000)
        _sendable(conn, first)


def test_a_request_recorded_in_the_future_still_lapses(team, team_ledger_factory):
    """Approval lapses ``expires_hours`` after the attempt's created_at, which the client
    sends: an intent dated a year ahead would wait for approval for a year (where no daily
    limit already pins created_at to the database's time)."""
    set_rules(team_ledger_factory.url, ApprovalRules(above={"XOF": xof(1000)}, expires_hours=2),
              schema=team_ledger_factory.schema)  # fmt: skip
    operator = team["operator"]
    with raw(operator) as conn, pytest.raises(psycopg.Error, match="database''?s time"):
        with conn.transaction():
            attempt_id = _attempt(conn, 3000, created="now() + interval '365 days'")
            conn.execute(
                "INSERT INTO events (attempt_id, at, status, source) "
                "VALUES (%s, now(), 'awaiting_approval', 'send')", (attempt_id,),
            )  # fmt: skip


def test_every_function_of_the_schema_pins_its_search_path(team):
    """What the attack above needs: a function resolving names through the caller's
    search_path (or with pg_temp first). A later migration's new function is caught here."""
    unpinned = team["owner"].query(
        """SELECT p.proname FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace
        AND NOT coalesce(p.proconfig @> ARRAY['search_path=' || quote_ident(current_schema()) || ', pg_temp'], false)
        ORDER BY 1"""
    )
    assert unpinned == []


def test_a_denied_refund_never_becomes_sendable(team):
    """Out of awaiting approval only by its decision; and a denial (or a cancellation) is
    final: the requester cannot record it as pending, processing or completed afterwards."""
    operator, approver = team["operator"], team["approver"]
    denied = record(operator, 3000, payment=payment())
    approver.decide(denied, Decision.DENIED, "not this one", SOMEONE)
    with raw(operator) as conn:
        for status in ("pending", "processing", "completed"):
            with pytest.raises(psycopg.Error, match="is denied: it cannot become"):
                conn.execute(
                    "INSERT INTO events (attempt_id, at, status, source) VALUES (%s, now(), %s, 'send')",
                    (denied, status),
                )  # fmt: skip
    assert operator.get(denied).status is RefundStatus.DENIED


def test_an_intent_in_a_currency_the_rules_do_not_name_cannot_dodge_them(team):
    """The rules key on attempts.currency, which the client sends, and a Novasend body names
    no currency (the provider refunds in the payment's): 'xof' instead of 'XOF' escapes the
    threshold, the daily limit and the amount check, and the body still sends 3,000 XOF."""
    operator = team["operator"]
    with raw(operator) as conn, pytest.raises(psycopg.Error), conn.transaction():
        attempt_id = uuid.uuid4().hex
        conn.execute(
            _INSERT_ATTEMPT.format(created="now()").replace("'XOF'", "'xof'"),
            (attempt_id, payment(), 3000, '{"amount": 3000}'),
        )
        _sendable(conn, attempt_id)


def test_an_operator_cannot_forge_or_move_the_chain(team):
    """No call of the chain's functions, no write of its head; link columns sent with a row
    are replaced by the trigger; a forged transaction tip (a setting any client may set) is
    refused (it only broke the operator's own link, but verify names only the first break)."""
    operator = team["operator"]
    attempt_id = record(operator, 10, payment=payment())
    with raw(operator) as conn:
        for statement in (
            "SELECT chain_link('events', 'x')",
            "SELECT chain_commit()",
            "UPDATE chain_head SET seq = 0",
            "TRUNCATE events",
            "ALTER TABLE events DISABLE TRIGGER USER",
            "CREATE TABLE public.approval_rules (id int)",
        ):
            with pytest.raises(psycopg.Error):
                conn.execute(statement)
        conn.execute(
            "INSERT INTO triage (attempt_id, at, action, note, operator_name, operator_uid, hostname,"
            " chain_seq, prev_hash, row_hash) VALUES (%s, now(), 'note', 'n', 'ama', 1, 'h', 1, 'x', 'y')",
            (attempt_id,),
        )  # fmt: skip
        assert operator.verify_chain().broken is None
        with pytest.raises(psycopg.Error, match="newest link"), conn.transaction():
            conn.execute("SELECT set_config('refund_tui.chain_tip', txid_current() || ' 999999 forged', true)")
            conn.execute(
                "INSERT INTO triage (attempt_id, at, action, note, operator_name, operator_uid, hostname)"
                " VALUES (%s, now(), 'note', 'n', 'ama', 1, 'h')", (attempt_id,),
            )  # fmt: skip
    assert operator.verify_chain().broken is None


def test_an_old_snapshot_cannot_pass_the_daily_limit(team):
    """The limit sums the role's attempts after taking its lock: a transaction whose snapshot
    (repeatable read) predates attempts committed since must not count without them. What
    refuses it is the chain: its head, updated since, cannot be locked from that snapshot."""
    operator = team["operator"]
    with raw(operator) as stale, raw(operator) as conn:
        stale.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        stale.execute("SELECT count(*) FROM attempts")  # the snapshot is taken here
        for _ in range(5):
            _sendable(conn, _attempt(conn, 1000))  # the whole limit, committed
        with pytest.raises(psycopg.Error, match="over the daily limit|could not serialize"):
            _sendable(stale, _attempt(stale, 1000))


def test_a_forged_chain_tip_cannot_move_the_head_or_wedge_the_ledger(team):
    """The head moves at commit to the transaction's tip, a setting any client may set: set
    after its own insert to the largest bigint, every later link of every role overflowed
    (the ledger refused all writes). A tip that is not the transaction's newest link is refused."""
    operator = team["operator"]
    attempt_id = record(operator, 10, payment=payment())
    with raw(operator) as conn, pytest.raises(psycopg.Error, match="newest link"), conn.transaction():
        conn.execute(
            "INSERT INTO triage (attempt_id, at, action, note, operator_name, operator_uid, hostname)"
            " VALUES (%s, now(), 'note', 'n', 'ama', 1, 'h')", (attempt_id,),
        )  # fmt: skip
        conn.execute("SELECT set_config('refund_tui.chain_tip', txid_current() || ' 9223372036854775807 x', true)")
    record(team["approver"], 10, payment=payment())  # the ledger still takes writes
    assert operator.verify_chain().broken is None


def test_one_statement_inserting_several_rows_links_each_after_the_last(team):
    """The tip check finds, for each row of a multi-row insert, the row linked just before."""
    operator = team["operator"]
    attempt_id = record(operator, 10, payment=payment())
    with raw(operator) as conn:
        conn.execute(
            "INSERT INTO triage (attempt_id, at, action, note, operator_name, operator_uid, hostname)"
            " SELECT %s, now(), 'note', 'n' || i, 'ama', 1, 'h' FROM generate_series(1, 3) i",
            (attempt_id,),
        )  # fmt: skip
    assert operator.verify_chain().broken is None
