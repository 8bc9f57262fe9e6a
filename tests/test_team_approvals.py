"""Four eyes end to end: real processes as three database logins (operator, approver, viewer)
on one team ledger whose owner set the rules, against the simulator; executed refunds are
counted on the simulator itself (``GET /_sandbox/refunds``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from refund_tui.ledgers.postgres import PostgresLedger
from tests.postgres import session_database
from tests.test_team_ledger import PAYMENTS, Team, cli, executed, refund_args

RULES = """
[profiles.team.approval]
above = { GHS = "100", XOF = "5000" }
expires_hours = 1
[profiles.team.limits]
per_operator_daily = { GHS = "450", XOF = "100000" }
"""
LARGE = {"vesicash": "300", "novasend": "6000"}


class ApprovalTeam(Team):
    """The owner (with the rules in its config), an operator, two approvers and a viewer."""

    def __init__(self, sandbox, database_url, root) -> None:
        super().__init__(sandbox, database_url, root)
        self.owner = self.home("owner")
        with open(self.root / "owner" / "config" / "config.toml", "a", encoding="utf-8") as config:
            config.write(RULES)
        setup = cli(self.owner, "ledger", "setup", "--profile", "team")
        assert setup.returncode == 0, setup.stderr
        assert "approval needed above 100.00 GHS" in setup.stdout
        self.envs = {}
        for name, role in (("operator", "refund_tui_operator"), ("approver", "refund_tui_approver"),
                           ("approver2", "refund_tui_approver"), ("viewer", "refund_tui_viewer")):  # fmt: skip
            login = self.login(name)
            with psycopg.connect(database_url, autocommit=True) as conn:  # `ledger grant`'s own test: test_team_ledger
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login)))
            self.envs[name] = self.home(name, login)

    def run(self, who: str, *args: str):
        return cli(self.envs[who], *args)


@pytest.fixture
def team(sandbox, postgres_database, tmp_path) -> Iterator[ApprovalTeam]:
    with session_database(postgres_database) as database_url:
        yield ApprovalTeam(sandbox, database_url, tmp_path)


def outcome(result) -> dict:
    return json.loads(result.stdout)


@pytest.mark.parametrize("provider", ["vesicash", "novasend"])
def test_over_the_threshold_only_another_approver_sends_it_and_only_once(team, sandbox, provider):
    reference = sandbox.create_payment(**PAYMENTS[provider])
    asked = team.run("operator", *refund_args(provider, reference, LARGE[provider]), "--json")
    assert asked.returncode == 0, asked.stderr
    assert (outcome(asked)["code"], outcome(asked)["refund"]["status"]) == ("awaiting_approval", "awaiting_approval")
    attempt_id = outcome(asked)["refund"]["attempt_id"]
    assert executed(sandbox, reference) == []

    own = team.run("operator", "approve", attempt_id[:8], "--yes")
    assert own.returncode == 1
    assert "does not hold refund_tui_approver" in own.stderr
    viewer = team.run("viewer", "approve", attempt_id, "--yes")
    assert viewer.returncode == 1
    assert "permission denied for table approvals" in viewer.stderr
    no_reason = team.run("approver", "deny", attempt_id)
    assert no_reason.returncode == 2
    assert executed(sandbox, reference) == []

    queue = team.run("approver", "approvals", "--json")
    [waiting] = outcome(queue)["waiting"]
    assert (waiting["attempt_id"], waiting["requested_by"], waiting["reason"]) == (
        attempt_id, team.prefix + "_operator", "Customer cancellation")
    assert outcome(team.run("operator", "approvals", "--json"))["waiting"] == []

    approved = team.run("approver", "approve", attempt_id, "--yes", "--json")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert outcome(approved)["code"] == "submitted"
    again = team.run("approver2", "approve", attempt_id, "--yes")
    assert again.returncode == 1
    assert "is not awaiting approval" in again.stderr
    assert len(executed(sandbox, reference)) == 1
    assert outcome(team.run("approver", "approvals", "--json"))["waiting"] == []


def test_an_approvers_own_refund_needs_another_approver(team, sandbox):
    reference = sandbox.create_payment(**PAYMENTS["novasend"])
    asked = team.run("approver", *refund_args("novasend", reference, "6000"), "--json")
    attempt_id = outcome(asked)["refund"]["attempt_id"]
    own = team.run("approver", "approve", attempt_id, "--yes")
    assert own.returncode == 1
    assert own.stderr.startswith("refused: the team ledger refused it: role ")
    assert "another approver must decide (four eyes): nothing was sent" in own.stderr
    assert team.run("approver2", "approve", attempt_id, "--yes").returncode == 0
    assert len(executed(sandbox, reference)) == 1


def test_waiting_refunds_hold_the_balance_deny_and_cancel_send_nothing(team, sandbox):
    reference = sandbox.create_payment(**PAYMENTS["vesicash"])  # 500 GHS
    first = outcome(team.run("operator", *refund_args("vesicash", reference, "300"), "--json"))
    held = team.run("approver", *refund_args("vesicash", reference, "250"))
    assert held.returncode == 1
    assert "over the refundable balance: max 200.00 GHS" in held.stderr
    listed = team.run("approver", "approvals").stdout
    assert f"asked by {team.prefix}_operator (" in listed and "because: Customer cancellation; lapses" in listed
    denied = team.run("approver", "deny", first["refund"]["attempt_id"], "--reason", "no ticket", "--json")
    assert (denied.returncode, outcome(denied)["refund"]["status"]) == (0, "denied")
    never_sent = team.run("operator", "resend", first["refund"]["attempt_id"], "--yes")
    assert (never_sent.returncode, "never sent: the refund is denied" in never_sent.stderr) == (1, True)
    second = outcome(team.run("operator", *refund_args("vesicash", reference, "150"), "--json"))
    assert second["refund"]["status"] == "awaiting_approval"
    not_yours = team.run("approver", "cancel", second["refund"]["attempt_id"])
    assert (not_yours.returncode, "only its requester" in not_yours.stderr) == (1, True)
    cancelled = team.run("operator", "cancel", second["refund"]["attempt_id"], "--json")
    assert (cancelled.returncode, outcome(cancelled)["refund"]["status"]) == (0, "cancelled")
    late = team.run("approver", "approve", second["refund"]["attempt_id"], "--yes")
    assert (late.returncode, "is not awaiting approval: it is cancelled" in late.stderr) == (1, True)
    assert executed(sandbox, reference) == []


def test_a_lapsed_request_is_refused(team, sandbox):
    reference = sandbox.create_payment(**PAYMENTS["novasend"])
    asked = outcome(team.run("operator", *refund_args("novasend", reference, "6000"), "--json"))
    attempt_id = asked["refund"]["attempt_id"]
    with psycopg.connect(team.database_url, autocommit=True, options="-c search_path=refund_tui") as conn:
        conn.execute("ALTER TABLE attempts DISABLE TRIGGER attempts_append_only")  # an hour passes
        conn.execute("UPDATE attempts SET created_at = created_at - interval '61 minutes' "
                     "WHERE attempt_id = %s", (attempt_id,))  # fmt: skip
        conn.execute("ALTER TABLE attempts ENABLE TRIGGER attempts_append_only")
    lapsed = team.run("approver", "approve", attempt_id, "--yes")
    assert lapsed.returncode == 1
    assert "lapsed at" in lapsed.stderr and "request it again" in lapsed.stderr
    assert executed(sandbox, reference) == []
    with PostgresLedger(team.database_url) as ledger:
        assert ledger.get(attempt_id).status.value == "cancelled"


def test_over_the_daily_limit_says_the_limit_and_what_is_left(team, sandbox):
    one, two = (sandbox.create_payment(**PAYMENTS["vesicash"]) for _ in range(2))
    assert team.run("operator", *refund_args("vesicash", one, "90")).returncode == 0
    assert team.run("operator", *refund_args("vesicash", one, "300")).returncode == 0  # waits, counts
    over = team.run("operator", *refund_args("vesicash", two, "61"), "--json")
    assert over.returncode == 1
    assert outcome(over)["code"] == "daily_limit"
    assert outcome(over)["message"] == (
        f"over the daily limit of role {team.prefix}_operator: 450.00 GHS a day (UTC), "
        "60.00 GHS left today: nothing was sent"
    )
    assert len(executed(sandbox, one)) == 1 and executed(sandbox, two) == []
    rules = team.run("viewer", "ledger", "rules", "--json")  # a client whose config has no rules
    assert outcome(rules)["per_operator_daily_minor"] == {"GHS": 45000, "XOF": 100000}
    shown = team.run("approver", "ledger", "rules").stdout
    assert "approval needed above 100.00 GHS" in shown and "lapses after 1 h" in shown
    assert f"you ({team.prefix}_approver) may approve other roles' refunds" in shown


def test_two_approvers_at_once_send_it_once(team, sandbox):
    reference = sandbox.create_payment(**PAYMENTS["vesicash"])
    asked = outcome(team.run("operator", *refund_args("vesicash", reference, "300"), "--json"))
    attempt_id = asked["refund"]["attempt_id"]
    racing = [
        subprocess.Popen([sys.executable, "-m", "refund_tui", "approve", attempt_id, "--yes"],
                         env=team.envs[who], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for who in ("approver", "approver2")
    ]  # fmt: skip
    answers = [process.communicate(timeout=60) for process in racing]
    assert sorted(process.returncode for process in racing) == [0, 1], answers
    assert len(executed(sandbox, reference)) == 1


def test_approving_at_a_terminal_shows_the_refund_and_needs_the_amount_typed(team, sandbox):
    reference = sandbox.create_payment(**PAYMENTS["vesicash"])
    attempt_id = outcome(team.run("operator", *refund_args("vesicash", reference, "300"), "--json"))["refund"]["attempt_id"]

    def approve(typed: str):
        return subprocess.run([sys.executable, "-m", "refund_tui", "approve", attempt_id[:8]], input=f"{typed}\n",
                              env=team.envs["approver"], capture_output=True, text=True, timeout=60)  # fmt: skip

    wrong = approve("30")
    assert wrong.returncode == 1 and "the amount typed does not match" in wrong.stderr
    for shown in ("customer: ", "balance after: 200.00 GHS", "amount: 300.00 GHS", "reason: Customer cancellation",
                  f"asked by: {team.prefix}_operator", "type the amount (300.00)"):  # fmt: skip
        assert shown in wrong.stdout, wrong.stdout
    assert executed(sandbox, reference) == []
    right = approve("300")
    assert right.returncode == 0, right.stderr
    assert len(executed(sandbox, reference)) == 1
