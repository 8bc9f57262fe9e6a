"""Four eyes and daily limits on the team ledger, enforced by PostgreSQL whatever the client:
each test acts as a real database login (operator, approver, viewer), through the adapter or
as a modified client speaking raw SQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from refund_tui.core.approvals import ApprovalRules, Decision
from refund_tui.core.ledger import ApprovalRefused, DailyLimitExceeded, LedgerError
from refund_tui.core.models import RefundStatus
from refund_tui.ledgers.postgres import set_rules
from refund_tui.ledgers.postgres_schema import APPROVER, OPERATOR, VIEWER
from tests.ledger.factories import OPERATOR as SOMEONE
from tests.ledger.factories import record, xof
from tests.postgres import login_role

RULES = ApprovalRules(above={"XOF": xof(1000)}, expires_hours=2, daily_limit={"XOF": xof(5000)})


@pytest.fixture
def team(team_ledger_factory, postgres_database):
    """The owner (rules set), an operator, two approvers and a viewer on one ledger."""
    set_rules(team_ledger_factory.url, RULES, schema=team_ledger_factory.schema)
    tag = uuid.uuid4().hex[:6]

    def login(name: str, *groups: str):
        return team_ledger_factory(login_role(postgres_database, f"{name}_{tag}", *groups))

    return {
        "owner": team_ledger_factory(),
        "operator": login("op", OPERATOR),
        "approver": login("ap", APPROVER),
        "approver2": login("ap2", APPROVER),
        "viewer": login("view", VIEWER),
    }


def raw(ledger) -> psycopg.Connection:
    """A modified client: the same login, plain SQL."""
    return psycopg.connect(ledger.url, autocommit=True, options=f"-c search_path={ledger.schema}")


def payment() -> str:
    return f"tr_{uuid.uuid4().hex[:8]}"


def test_rules_are_the_ledgers_and_a_large_intent_waits_for_approval(team):
    operator = team["operator"]
    assert operator.approval_rules() == RULES
    small = operator.get(record(operator, 1000, payment=payment()))
    large = operator.get(record(operator, 1001, payment=payment()))
    assert (small.status, large.status) == (RefundStatus.PENDING, RefundStatus.AWAITING_APPROVAL)
    assert [a.attempt_id for a in team["approver"].awaiting_approval()] == [large.attempt_id]
    assert operator.awaiting_approval() == [] and team["viewer"].awaiting_approval() == []
    assert [a.attempt_id for a in operator.awaiting_approval(mine=True)] == [large.attempt_id]


def test_setting_the_same_rules_again_changes_nothing_and_a_change_stays_on_record(team, team_ledger_factory):
    url, schema = team_ledger_factory.url, team_ledger_factory.schema
    assert set_rules(url, RULES, schema=schema) is False
    assert set_rules(url, ApprovalRules(), schema=schema) is True
    assert team["operator"].approval_rules() == ApprovalRules()
    [(versions,)] = team["owner"].query("SELECT count(*) FROM approval_rules")
    assert versions == 2
    with pytest.raises(LedgerError, match="only the ledger's owner"):
        set_rules(team["approver"].url, RULES, schema=schema)


def test_an_approver_approves_once_and_the_approval_claims_the_send(team):
    operator, approver = team["operator"], team["approver"]
    attempt_id = record(operator, 3000, payment=payment())
    approved = approver.decide(attempt_id, Decision.APPROVED, "", SOMEONE)
    assert approved.status is RefundStatus.PENDING
    events = operator.events(attempt_id)
    assert [(e.status, e.source) for e in events] == [
        (RefundStatus.AWAITING_APPROVAL, "intent"), (RefundStatus.PENDING, "approval"),
        (RefundStatus.PENDING, "send"),
    ]  # fmt: skip
    assert {e.recorded_by for e in events[1:]} == {approver.role}
    with pytest.raises(ApprovalRefused, match="is not awaiting approval: it is pending"):
        team["approver2"].decide(attempt_id, Decision.APPROVED, "", SOMEONE)
    assert not operator.claim_send(attempt_id, timedelta(minutes=1))  # the approver's send is running


def test_own_refund_viewer_and_plain_operator_are_refused_by_the_database(team):
    operator, approver = team["operator"], team["approver"]
    attempt_id = record(approver, 3000, payment=payment())  # an approver's own request
    with pytest.raises(ApprovalRefused, match="requested refund .* itself: another approver must decide"):
        approver.decide(attempt_id, Decision.APPROVED, "", SOMEONE)
    with pytest.raises(ApprovalRefused, match="does not hold refund_tui_approver"):
        operator.decide(attempt_id, Decision.APPROVED, "", SOMEONE)
    with pytest.raises(LedgerError, match="permission denied for table approvals"):
        team["viewer"].decide(attempt_id, Decision.APPROVED, "", SOMEONE)
    assert approver.get(attempt_id).status is RefundStatus.AWAITING_APPROVAL


def test_a_modified_client_cannot_approve_send_or_skip_approval(team):
    operator, approver = team["operator"], team["approver"]
    waiting = record(operator, 3000, payment=payment())
    with raw(operator) as conn:
        attempts = [
            ("INSERT INTO approvals (attempt_id, decision, operator_name, hostname, recorded_by) "
             "VALUES (%s, 'approved', 'x', 'h', %s)", (waiting, approver.role)),
            ("INSERT INTO events (attempt_id, at, status, source) VALUES (%s, now(), 'pending', 'send')", (waiting,)),
            ("INSERT INTO events (attempt_id, at, status, source) VALUES (%s, now(), 'completed', 'webhook')", (waiting,)),
            ("INSERT INTO events (attempt_id, at, status, source) VALUES (%s, now(), 'cancelled', 'lapsed')", (waiting,)),
            ("SELECT set_config('refund_tui.deriving', 'on', false); "
             "UPDATE current_state SET status = 'pending'", ()),
            ("UPDATE events SET status = 'pending' WHERE attempt_id = %s", (waiting,)),
            ("DELETE FROM approvals", ()),
        ]  # fmt: skip
        for statement, params in attempts:
            with pytest.raises(psycopg.Error):
                conn.execute(statement, params)
    assert operator.get(waiting).status is RefundStatus.AWAITING_APPROVAL
    with raw(approver) as conn:  # the approver's own raw approval names the approver anyway
        conn.execute(
            "INSERT INTO approvals (attempt_id, decision, operator_name, hostname, recorded_by) "
            "VALUES (%s, 'approved', 'x', 'h', 'somebody_else')", (waiting,),
        )  # fmt: skip
        [(who,)] = conn.execute("SELECT recorded_by FROM approvals WHERE attempt_id = %s", (waiting,)).fetchall()
    assert who == approver.role


def test_a_large_intent_recorded_as_sendable_is_refused(team):
    operator = team["operator"]
    reference = payment()
    with raw(operator) as conn, pytest.raises(psycopg.Error, match="can only be recorded as awaiting approval"):
        with conn.transaction():
            conn.execute(
                """INSERT INTO attempts (attempt_id, created_at, profile, environment, provider,
                payment_reference, amount_minor, currency, phone, reason, external_reference,
                request_method, request_path, request_body, operator_name, operator_uid, hostname,
                pid, app_version) VALUES ('big', now(), 'p', 'sandbox', 'novasend', %s, 3000,
                'XOF', '+2250700000000', 'r', 'tag', 'POST', '/x', '{"amount": 3000}', 'ama', 1, 'h', 1, 'x')""",
                (reference,),
            )
            conn.execute("INSERT INTO events (attempt_id, at, status, source) VALUES ('big', now(), 'pending', 'intent')")
    assert operator.attempts(payment_reference=reference) == []


def test_a_small_attempt_whose_body_sends_a_large_amount_is_refused(team):
    from dataclasses import replace

    from tests.ledger.factories import new_attempt

    honest = new_attempt(xof(900), payment=payment())
    forged = replace(honest, request=replace(honest.request, body=honest.request.body.replace('"amount": 900', '"amount": 90000')))
    assert forged.request.body != honest.request.body
    with pytest.raises(ApprovalRefused, match="the request sends 90000 XOF, not the 900 minor units"):
        team["operator"].record_attempt(forged, limit=xof(100_000), known_references=())
    assert team["operator"].attempts(payment_reference=honest.payment_reference) == []


def test_deny_needs_a_reason_and_cancel_is_the_requesters(team):
    operator, approver = team["operator"], team["approver"]
    denied, cancelled = record(operator, 1500, payment=payment()), record(operator, 1500, payment=payment())
    with pytest.raises(ValueError, match="reason is required"):
        approver.decide(denied, Decision.DENIED, "  ", SOMEONE)
    assert approver.decide(denied, Decision.DENIED, "no ticket", SOMEONE).status is RefundStatus.DENIED
    with pytest.raises(ApprovalRefused, match="only its requester"):
        approver.decide(cancelled, Decision.CANCELLED, "", SOMEONE)
    assert operator.decide(cancelled, Decision.CANCELLED, "", SOMEONE).status is RefundStatus.CANCELLED
    assert operator.events(denied)[-1].note == f"denied by {approver.role}: no ticket"


def test_a_lapsed_request_cannot_be_approved_and_stops_holding_the_balance(team, team_ledger_factory):
    operator, approver = team["operator"], team["approver"]
    reference = payment()
    attempt_id = record(operator, 3000, payment=reference, limit=4000)
    with raw(team["owner"]) as conn:  # two hours pass (the owner's hand: triggers off)
        conn.execute("ALTER TABLE attempts DISABLE TRIGGER attempts_append_only")
        conn.execute("UPDATE attempts SET created_at = created_at - interval '2 hours 1 second' "
                     "WHERE attempt_id = %s", (attempt_id,))  # fmt: skip
        conn.execute("ALTER TABLE attempts ENABLE TRIGGER attempts_append_only")
        with pytest.raises(psycopg.Error, match="lapsed at"):
            conn.execute(
                "INSERT INTO approvals (attempt_id, decision, operator_name, hostname) "
                "VALUES (%s, 'approved', 'x', 'h')", (attempt_id,),
            )  # fmt: skip
    with pytest.raises(ApprovalRefused, match="lapsed at .* UTC \\(after 2 h\\): request it again"):
        approver.decide(attempt_id, Decision.APPROVED, "", SOMEONE)
    assert approver.awaiting_approval() == []
    assert operator.get(attempt_id).status is RefundStatus.CANCELLED
    assert operator.events(attempt_id)[-1].source == "lapsed"
    record(operator, 1000, payment=reference, limit=4000)  # the cap no longer counts it


def test_the_daily_limit_is_the_roles_and_counts_what_waits_but_not_what_was_denied(team):
    operator, approver = team["operator"], team["approver"]
    waiting = record(operator, 3000, payment=payment())
    record(operator, 1000, payment=payment())
    with pytest.raises(DailyLimitExceeded) as refused:
        record(operator, 1001, payment=payment())
    assert str(refused.value) == (
        f"over the daily limit of role {operator.role}: 5,000 XOF a day (UTC), 1,000 XOF left today"
    )
    record(approver, 1000, payment=payment())  # another role has its own limit
    approver.decide(waiting, Decision.DENIED, "duplicate request", SOMEONE)
    record(operator, 3000, payment=payment())  # the denied refund no longer counts
    with raw(operator) as conn, pytest.raises(psycopg.Error, match="over the daily limit"):
        conn.execute(
            """INSERT INTO attempts (attempt_id, created_at, profile, environment, provider,
            payment_reference, amount_minor, currency, phone, reason, external_reference,
            request_method, request_path, request_body, operator_name, operator_uid, hostname,
            pid, app_version) VALUES ('over', now(), 'p', 'sandbox', 'novasend', 'tr_raw', 1001,
            'XOF', '+2250700000000', 'r', 'tag', 'POST', '/x', '{"amount": 1001}', 'ama', 1, 'h', 1, 'x')"""
        )
    with raw(operator) as conn, pytest.raises(psycopg.Error, match="at the database's time"):
        conn.execute(
            """INSERT INTO attempts (attempt_id, created_at, profile, environment, provider,
            payment_reference, amount_minor, currency, phone, reason, external_reference,
            request_method, request_path, request_body, operator_name, operator_uid, hostname,
            pid, app_version) VALUES ('old', now() - interval '1 day', 'p', 'sandbox', 'novasend',
            'tr_raw', 10, 'XOF', '+2250700000000', 'r', 'tag', 'POST', '/x', '{"amount": 10}', 'ama', 1, 'h', 1, 'x')"""
        )


def test_the_owner_imports_history_above_todays_rules(team, tmp_path):
    from refund_tui.ledgers.sqlite import SqliteLedger

    with SqliteLedger(tmp_path / "solo.sqlite3") as solo:
        old = record(solo, 6000, payment=payment())  # over the threshold and the daily limit
    team["owner"].import_solo(tmp_path / "solo.sqlite3")
    assert team["operator"].get(old).status is RefundStatus.PENDING


def test_rules_and_decisions_are_links_of_the_chain_and_an_edited_decision_is_caught(team, postgres_database):
    operator, approver = team["operator"], team["approver"]
    approved, denied = record(operator, 3000, payment=payment()), record(operator, 2000, payment=payment())
    approver.decide(approved, Decision.APPROVED, "", SOMEONE)
    approver.decide(denied, Decision.DENIED, "not ours to refund", SOMEONE)
    assert team["owner"].verify_chain().broken is None
    with psycopg.connect(postgres_database, autocommit=True,
                         options=f"-c search_path={operator.schema}") as superuser:  # fmt: skip
        superuser.execute("SET session_replication_role = replica")  # no trigger fires
        superuser.execute("UPDATE approvals SET decision = 'approved', reason = NULL WHERE attempt_id = %s", (denied,))
    broken = team["owner"].verify_chain().broken
    assert (broken.table, broken.key) == ("approvals", denied)


def test_a_refund_in_a_currency_the_rules_do_not_name_always_awaits_approval(team):
    """The rules name XOF only: a Vesicash refund of 1.00 GHS still waits for an approver
    (fail closed: the client says the currency, and no refund body names one)."""
    from refund_tui.core.models import ProviderName
    from refund_tui.core.money import Money
    from tests.ledger.factories import new_attempt

    small = new_attempt(Money(100, "GHS"), payment=payment(), provider=ProviderName.VESICASH)
    attempt = team["operator"].record_attempt(small, limit=Money(10_000, "GHS"), known_references=())
    assert attempt.status is RefundStatus.AWAITING_APPROVAL
    assert "approval needed for every refund in another currency than XOF" in team["operator"].approval_rules().lines()
