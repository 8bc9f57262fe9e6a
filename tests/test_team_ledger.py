"""The team ledger end to end: real processes with their own homes and database logins, one
PostgreSQL ledger, one simulator. Roles are the database's, and so is each row's author."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from refund_tui.core.credentials import FIELDS, env_variable
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.ledgers.postgres import PostgresLedger
from refund_tui.ledgers.postgres_schema import SCHEMA_VERSION
from tests.postgres import session_database

PAYMENTS = {
    "vesicash": dict(provider="vesicash", amount=500, currency="GHS", phone="+233241234567"),
    "novasend": dict(provider="novasend", amount=20000, currency="XOF", phone="+2250701234567"),
}
FULL = {"vesicash": "500", "novasend": "20000"}


class Team:
    """Config homes on one team ledger, each connecting as its own database login."""

    def __init__(self, sandbox, database_url: str, root: Path) -> None:
        self.sandbox, self.database_url, self.root = sandbox, database_url, root
        self.published = httpx.get(f"{sandbox.url}/_sandbox/", timeout=10).json()
        self.prefix = database_url.rsplit("/", 1)[1]  # its logins are dropped with it

    def login(self, name: str) -> str:
        """A new database login (no refund-tui role yet); its name."""
        login = f"{self.prefix}_{name}"
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
        return login

    def home(self, name: str, login: str | None = None, url: str | None = None) -> dict[str, str]:
        """The environment of a process whose ``team`` profile uses the ledger as ``login``."""
        if url is None:
            base = self.database_url.replace("postgresql://postgres@", f"postgresql://{login}@")
            url = base if login else self.database_url
        home = self.root / name
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / "config.toml").write_text(
            f'default_profile = "team"\n[profiles.team]\nenvironment = "sandbox"\n'
            f'refunds_enabled = true\nledger = "{url}"\n'
            f'[profiles.team.vesicash]\nbase_url = "{self.sandbox.vesicash_url}"\ntimeout_seconds = 2\n'
            f'[profiles.team.novasend]\nbase_url = "{self.sandbox.novasend_url}"\ntimeout_seconds = 2\n',
            "utf-8",
        )
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("REFUND_TUI_")}
        env["REFUND_TUI_HOME"] = str(home)
        for provider in ProviderName:
            for field in FIELDS[provider]:
                env[env_variable("team", provider, field)] = self.published[provider.value][field]
        return env


def cli(env, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "refund_tui", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def refund_args(provider: str, reference: str, amount: str) -> tuple[str, ...]:
    return ("refund", "--provider", provider, "--payment", reference, "--amount", amount,
            "--reason", "Customer cancellation", "--yes")  # fmt: skip


def executed(sandbox, reference):
    return [r for r in sandbox.refunds() if r["payment_reference"] == reference]


@pytest.fixture
def team(sandbox, postgres_database, tmp_path) -> Iterator[Team]:
    """A team on a database of its own: recovery is team-wide, so tests must not share one."""
    with session_database(postgres_database) as database_url:
        team = Team(sandbox, database_url, tmp_path)
        setup = cli(team.home("owner"), "ledger", "setup", "--profile", "team")
        assert setup.returncode == 0, setup.stderr
        assert f"schema version {SCHEMA_VERSION}" in setup.stdout
        yield team


@pytest.fixture
def owner_ledger(team) -> PostgresLedger:
    with PostgresLedger(team.database_url) as ledger:
        yield ledger


def test_setup_twice_grant_revoke_and_the_database_names_who_recorded(team, owner_ledger, sandbox):
    owner = team.home("owner")
    again = cli(owner, "ledger", "setup", "--profile", "team")
    assert (again.returncode, again.stdout.strip()) == (0, f"the team ledger at {team.database_url} "
                                                        f"is up to date (schema version {SCHEMA_VERSION})")  # fmt: skip
    ama = team.login("ama")
    granted = cli(owner, "ledger", "grant", "--profile", "team", ama, "refund_tui_operator")
    assert (granted.returncode, granted.stdout.strip()) == (0, f"granted refund_tui_operator to {ama}")
    reference = sandbox.create_payment(**PAYMENTS["novasend"])
    sent = cli(team.home("ama", ama), *refund_args("novasend", reference, "1000"))
    assert sent.returncode == 0, sent.stderr
    [attempt] = owner_ledger.attempts(payment_reference=reference)
    assert attempt.recorded_by == ama
    assert {event.recorded_by for event in owner_ledger.events(attempt.attempt_id)} == {ama}
    verified = cli(team.home("ama", ama), "ledger", "verify", "--profile", "team")
    assert verified.returncode == 0 and verified.stdout.startswith("the ledger's chain is intact: ")
    edited = [row["event_id"] for row in owner_ledger.audit_rows()][1]
    with psycopg.connect(team.database_url, autocommit=True, options="-c search_path=refund_tui") as superuser:
        superuser.execute("SET session_replication_role = replica")  # no trigger stops an UPDATE
        superuser.execute("UPDATE events SET status = 'failed' WHERE id = %s", (edited,))
    broken = cli(team.home("ama", ama), "ledger", "verify", "--profile", "team")
    assert broken.returncode == 1 and broken.stderr.startswith(f"refused: the chain breaks at event {edited} (link ")

    revoked = cli(owner, "ledger", "revoke", "--profile", "team", ama, "refund_tui_operator")
    assert revoked.returncode == 0, revoked.stderr
    refused = cli(team.home("ama", ama), *refund_args("novasend", reference, "1000"))
    assert refused.returncode == 1
    assert refused.stderr.startswith("refused: the team ledger refused role")
    assert len(executed(sandbox, reference)) == 1


def test_a_viewer_is_refused_by_the_database_and_nothing_is_sent(team, owner_ledger, sandbox):
    viewer = team.login("viewer")
    assert cli(team.home("owner"), "ledger", "grant", "--profile", "team", viewer,
               "refund_tui_viewer").returncode == 0  # fmt: skip
    reference = sandbox.create_payment(**PAYMENTS["vesicash"])
    refused = cli(team.home("viewer", viewer), *refund_args("vesicash", reference, "100"))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"refused: the team ledger refused role {viewer}: permission denied for table attempts "
        "(roles are granted with `refund-tui ledger grant`): nothing was sent"
    )
    assert executed(sandbox, reference) == []
    assert owner_ledger.attempts(payment_reference=reference) == []
    listed = cli(team.home("viewer", viewer), "status", "--json")
    assert listed.returncode == 0, listed.stderr


def test_an_unreachable_team_ledger_is_one_line_naming_where_and_who(team):
    env = team.home("lost", url="postgresql://ama@127.0.0.1:1/refunds?sslmode=disable")
    result = cli(env, "status")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("refused: cannot reach the team ledger (role ama at 127.0.0.1:1/refunds)")


def _cut_off(sandbox, provider: str, reference: str, env: dict[str, str]) -> None:
    """A's refund goes unknown, as in the trial. Novasend: the refund endpoint answers 5xx
    (nothing executes). Vesicash: the refund executes, its answer is dropped, and A dies
    before it can look at the payment record."""
    args = [sys.executable, "-m", "refund_tui", *refund_args(provider, reference, FULL[provider])]
    if provider == "novasend":
        sandbox.faults(fail_refunds_next=50)
        assert subprocess.run(args, env=env, capture_output=True, timeout=60).returncode == 3
        sandbox.faults(fail_refunds_next=0)
        return
    sandbox.faults(latency_ms=300, drop_next=1)
    a = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not executed(sandbox, reference):
        assert time.monotonic() < deadline and a.poll() is None, "A's refund never executed"
        time.sleep(0.01)
    a.send_signal(signal.SIGKILL)
    a.wait()
    sandbox.faults(latency_ms=0)


@pytest.mark.parametrize("provider", ["novasend", "vesicash"])
def test_the_trials_double_refund_cannot_happen_on_a_team_ledger(team, owner_ledger, sandbox, provider):
    """A's refund goes unknown; B (another account and login) is refused while it is in
    flight; B's recovery resolves A's attempt (Novasend: the same-key resend; Vesicash: the
    payment record, never a resend); exactly one refund executes."""
    owner = team.home("owner")
    logins = {name: team.login(name) for name in ("a", "b")}
    for login in logins.values():
        assert cli(owner, "ledger", "grant", "--profile", "team", login, "refund_tui_operator").returncode == 0
    a_env, b_env = (team.home(name, login) for name, login in logins.items())
    reference = sandbox.create_payment(**PAYMENTS[provider])
    _cut_off(sandbox, provider, reference, a_env)

    b_refund = cli(b_env, *refund_args(provider, reference, FULL[provider]))
    assert b_refund.returncode == 1
    assert "refunds in flight" in b_refund.stderr, b_refund.stderr
    recovered = cli(b_env, "recover", "--json")

    assert recovered.returncode == 0, recovered.stderr
    [result] = json.loads(recovered.stdout)["refunds"]
    refunds = executed(sandbox, reference)
    assert len(refunds) == 1
    [attempt] = owner_ledger.attempts(payment_reference=reference)
    assert attempt.recorded_by == logins["a"]
    assert result["refund_reference"] == refunds[0]["refund_reference"] == attempt.provider_reference
    assert attempt.status in (RefundStatus.PENDING, RefundStatus.PROCESSING, RefundStatus.COMPLETED)
    events = owner_ledger.events(attempt.attempt_id)
    assert {e.recorded_by for e in events if e.source == "recovery"} == {logins["b"]}
    b_resends = [e for e in events if e.source == "send" and e.recorded_by == logins["b"]]
    assert len(b_resends) == (1 if provider == "novasend" else 0)  # the same stored request
    if provider == "vesicash":
        assert not [e for e in events if e.source == "send"]


async def test_a_slow_team_ledger_never_freezes_the_event_loop(team, sandbox, monkeypatch):
    """Another host holds the payment's lock: the refund waits for it, the loop does not."""
    from refund_tui.session import Session

    for name, value in team.home("console").items():
        monkeypatch.setenv(name, value)
    session = Session.open("team")
    try:
        reference = sandbox.create_payment(**PAYMENTS["novasend"])
        view = await session.service.lookup(ProviderName.NOVASEND, reference)
        prepared = session.service.prepare(view, amount="1000", reason="Customer cancellation")
        with psycopg.connect(team.database_url) as blocker:  # a transaction on another host
            blocker.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                            (f"payment:novasend:{reference}",))  # fmt: skip
            release = threading.Timer(0.5, blocker.rollback)  # not from the loop: it may be stuck
            release.start()
            submit = asyncio.create_task(session.service.submit(prepared))
            gaps, last = [], time.monotonic()
            while not submit.done() and len(gaps) < 500:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
            release.join()
        attempt = await asyncio.wait_for(submit, 10)  # ...and done once it is released
        assert sum(gaps) >= 0.45  # it did wait for the other host's transaction
        assert max(gaps) < 0.2  # while the loop kept running
        assert attempt.provider_reference == executed(sandbox, reference)[0]["refund_reference"]
    finally:
        await session.aclose()


def test_a_solo_ledger_moves_in_once_with_its_ids_and_conflicts_are_refused(team, owner_ledger, tmp_path):
    from refund_tui.core.ledger import BatchRow
    from refund_tui.ledgers.sqlite import SqliteLedger
    from tests.ledger.factories import OPERATOR, notice, record

    solo_path = tmp_path / "solo.sqlite3"
    with SqliteLedger(solo_path) as solo:
        first = record(solo, 500, batch_row=BatchRow("b" * 32, 1))
        second = record(solo, 700, payment="tr_2")
        solo.acknowledge_finding("f1", kind="missing_in_ledger", provider=ProviderName.NOVASEND,
                                 payment_reference="tr_1", note="refunded by phone", operator=OPERATOR)  # fmt: skip
        solo.add_event(first, RefundStatus.PROCESSING, "provider", provider_reference=f"rf_{first[:8]}")
        solo.receive_notice(notice(RefundStatus.COMPLETED, reference=f"rf_{first[:8]}"), '{"n": 1}')
        solo.record_double_refund(first, f"rf_{first[:8]}", "rf_second", "double refund: rf_second")
        solo.claim(second, OPERATOR)
        solo.add_note(second, "called the customer", OPERATOR)
        solo_events = {a: solo.events(a) for a in (first, second)}
        solo_triage = solo.triage_log(second)
    owner = team.home("owner")

    imported = cli(owner, "ledger", "import", "--profile", "team", str(solo_path))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == (
        "imported 2 attempts, 5 events, 1 notices and 1 double refunds; 0 attempts were already "
        "in the team ledger"
    )
    for attempt_id, events in solo_events.items():
        assert [(e.at, e.status, e.source, e.note) for e in owner_ledger.events(attempt_id)] == [
            (e.at, e.status, e.source, e.note) for e in events
        ]
    assert owner_ledger.get(first).status is RefundStatus.COMPLETED
    assert owner_ledger.get(first).double_refunds == ("rf_second",) and owner_ledger.get(first).flagged
    assert owner_ledger.batch_attempts("b" * 32) == {1: first}  # a rerun of the batch sends nothing
    assert owner_ledger.acknowledgements()["f1"].note == "refunded by phone"
    assert [(e.at, e.action, e.note, e.operator) for e in owner_ledger.triage_log(second)] == [
        (e.at, e.action, e.note, e.operator) for e in solo_triage
    ]
    assert owner_ledger.verify_chain().broken is None  # every imported row joined the chain

    again = cli(owner, "ledger", "import", "--profile", "team", str(solo_path))
    assert again.stdout.strip() == (
        "imported 0 attempts, 0 events, 0 notices and 0 double refunds; 2 attempts were already "
        "in the team ledger"
    )
    assert len(owner_ledger.acknowledgements()) == 1 and owner_ledger.batch_attempts("b" * 32) == {1: first}
    assert len(owner_ledger.triage_log(second)) == 2
    with SqliteLedger(solo_path) as solo:  # the solo ledger went on; then it is edited by hand
        solo.add_event(second, RefundStatus.FAILED, "poll", failure_reason="wallet closed")
    assert "imported 0 attempts, 1 events" in cli(owner, "ledger", "import", "--profile", "team",
                                                   str(solo_path)).stdout  # fmt: skip
    with sqlite3.connect(solo_path) as raw:
        raw.execute("DROP TRIGGER attempts_no_update")
        raw.execute("UPDATE attempts SET amount_minor = 9999 WHERE attempt_id = ?", (first,))
    refused = cli(owner, "ledger", "import", "--profile", "team", str(solo_path))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"refused: nothing imported: 1 conflict(s) with the team ledger: {first}: the attempt differs"
    )
    assert owner_ledger.get(first).amount.minor == 500


async def test_operator_bs_board_shows_operator_as_refund_within_a_second(team, monkeypatch):
    """Two operators, two logins, two sessions on one team ledger: B's open board shows the
    refund A records, by the ledger's change notification (the board's own refresh is 2 s)."""
    from refund_tui.session import Session
    from refund_tui.tui.app import RefundApp
    from tests.console import FROZEN
    from tests.ledger.factories import new_attempt, xof
    from refund_tui.tui.screens.board import BoardTable
    from tests.test_tui_board import open_board, shown

    owner = team.home("owner")
    logins = {name: team.login(name) for name in ("a", "b")}
    for login in logins.values():
        assert cli(owner, "ledger", "grant", "--profile", "team", login, "refund_tui_operator").returncode == 0
    sessions = {}
    for name, login in logins.items():
        for variable, value in team.home(name, login).items():
            monkeypatch.setenv(variable, value)
        sessions[name] = await asyncio.to_thread(Session.open, "team")
    # B's board and tracking re-read nothing by themselves for an hour: only the watch can tell.
    sessions["b"].config = dataclasses.replace(sessions["b"].config, tracking_interval=3600)
    app = RefundApp(session=sessions["b"], clock=lambda: FROZEN)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await open_board(app, pilot, 0)
            attempt = await asyncio.to_thread(
                sessions["a"].ledger.record_attempt, new_attempt(xof(500)), limit=xof(1000),
                known_references=(),
            )  # fmt: skip
            recorded = time.monotonic()
            while attempt.attempt_id not in shown(app):
                assert time.monotonic() - recorded < 1.0, "B's board did not show A's refund within 1 s"
                await pilot.pause(0.02)
            # A says "I'm on it": B's board shows it the same way.
            await asyncio.to_thread(sessions["a"].ledger.claim, attempt.attempt_id, sessions["a"].service.operator)
            claimed = time.monotonic()
            while attempt.attempt_id not in app.screen.last_data.claims:
                assert time.monotonic() - claimed < 1.0, "B's board did not show A's claim within 1 s"
                await pilot.pause(0.02)
            assert app.screen.last_data.claims[attempt.attempt_id].who == logins["a"]
            await pilot.pause()
            assert app.screen.query_one(BoardTable).get_cell(attempt.attempt_id, "reason").plain.startswith("@")
        assert sessions["b"].ledger.get(attempt.attempt_id).recorded_by == logins["a"]
    finally:
        for session in sessions.values():
            await session.aclose()


def test_racing_operators_killed_and_cut_off_never_over_refund_nor_lose_an_attempt(team, owner_ledger, sandbox):
    """4 processes x 25 refunds of 1,000 on one 20,000 payment; one process SIGKILLed, every
    ledger connection terminated by the server mid-run; then one recovery. Executed refunds
    never exceed the payment, each has its attempt, and every attempt a process saw is kept."""
    owner = team.home("owner")
    envs = []
    for number in range(4):
        login = team.login(f"op{number}")
        assert cli(owner, "ledger", "grant", "--profile", "team", login, "refund_tui_operator").returncode == 0
        envs.append(team.home(f"op{number}", login))
    payment = sandbox.create_payment(**PAYMENTS["novasend"])
    racers = start_race(sandbox, owner_ledger, envs, payment, 25)
    with psycopg.connect(team.database_url, autocommit=True) as admin:
        terminated = admin.execute(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE application_name LIKE 'refund-tui%%' AND datname = current_database()"""
        ).fetchall()
    assert terminated
    racers[0].send_signal(signal.SIGKILL)
    seen = finish_race(sandbox, racers, envs[1], 0, -signal.SIGKILL)
    assert_every_refund_accounted_for(sandbox, owner_ledger, payment, seen)


def start_race(sandbox, ledger, envs, payment: str, tries: int) -> list[subprocess.Popen]:
    """One racer (tests/team_race.py) per environment, each making ``tries`` refunds of 1,000
    on ``payment`` (the provider slowed a little); returned once they have all begun."""
    sandbox.faults(latency_ms=40)
    racers = [
        subprocess.Popen([sys.executable, "-m", "tests.team_race", payment, str(tries)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for env in envs
    ]
    deadline = time.monotonic() + 30
    while len(ledger.attempts(payment_reference=payment)) < len(envs):
        assert time.monotonic() < deadline, "the racers never got going"
        time.sleep(0.05)
    return racers


def finish_race(sandbox, racers, recover_env, *exit_codes: int) -> list[str]:
    """Waits for the racers (each ending with one of ``exit_codes``), then runs one recovery
    in a new process; the attempt ids the racers were told about."""
    seen = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode in exit_codes, err
        seen += out.split()
    sandbox.faults(latency_ms=0)
    recovered = cli(recover_env, "recover")
    assert recovered.returncode in (0, 3), recovered.stderr
    return seen


def assert_every_refund_accounted_for(sandbox, ledger, payment: str, seen: list[str]) -> None:
    """Executed refunds never exceed the payment, each has its attempt, no attempt is lost."""
    refunds = executed(sandbox, payment)
    attempts = {a.attempt_id: a for a in ledger.attempts(payment_reference=payment)}
    references = {a.provider_reference for a in attempts.values()}
    assert {r["refund_reference"] for r in refunds} <= references  # every refund has its attempt
    assert set(seen) <= set(attempts)  # no attempt a process was told about is lost
    total = sum(int(float(r["amount"])) for r in refunds)
    assert total <= PAYMENTS["novasend"]["amount"]
    assert refunds and len(attempts) >= 4  # the race really ran (a refund in flight holds off the rest)


def test_a_recreated_team_ledger_is_refused_until_accepted_on_purpose(team):
    ama = team.login("ama")
    owner = team.home("owner")
    assert cli(owner, "ledger", "grant", "--profile", "team", ama, "refund_tui_viewer").returncode == 0
    env = team.home("ama", ama)
    assert cli(env, "status").returncode == 0  # first use: its identity is recorded
    with psycopg.connect(team.database_url, autocommit=True) as admin:
        admin.execute("DROP SCHEMA refund_tui CASCADE")
    assert cli(owner, "ledger", "setup", "--profile", "team").returncode == 0
    assert cli(owner, "ledger", "grant", "--profile", "team", ama, "refund_tui_viewer").returncode == 0

    refused = cli(env, "status")
    assert refused.returncode == 1
    assert "is another ledger" in refused.stderr and "recreated or replaced" in refused.stderr
    assert "ledger init --force --profile team" in refused.stderr
    accepted = cli(env, "ledger", "init", "--force", "--profile", "team")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("accepted team ledger ")
    assert cli(env, "status").returncode == 0


def test_triage_as_a_team_from_the_command_line(team, owner_ledger, capsys):
    """A claims, B sees the claim and takes it over only explicitly, B notes, a viewer is
    refused; status and export, read by the viewer, are the team's, each row named by the
    database. (Commands run in this process: each home is its own login.)"""
    from tests.inprocess import run_cli
    from tests.ledger.factories import new_attempt, xof

    logins = {name: team.login(name) for name in ("a", "b", "viewer")}
    with psycopg.connect(team.database_url, autocommit=True) as conn:
        for name, login in logins.items():
            role = "refund_tui_viewer" if name == "viewer" else "refund_tui_operator"
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login)))
    homes = {name: team.home(name, login) for name, login in logins.items()}
    a_url = team.database_url.replace("postgresql://postgres@", f"postgresql://{logins['a']}@")
    with PostgresLedger(a_url) as as_a:
        attempt = as_a.record_attempt(new_attempt(xof(500)), limit=xof(1000), known_references=())
    short = attempt.attempt_id[:8]

    def run(name: str, *args: str) -> dict:
        result = run_cli(capsys, homes[name], *args, "--json")
        return json.loads(result.stdout)

    assert run("a", "claim", short)["entry"]["who"] == logins["a"]
    held = run("b", "claim", short)
    assert (held["code"], held["exit_code"]) == ("claimed", 1)
    assert held["message"].startswith(f"{logins['a']} has been on refund {short}")
    refused = run("viewer", "note", short, "seen it")
    assert (refused["code"], refused["exit_code"]) == ("ledger_error", 1)
    assert refused["message"] == (
        f"the team ledger refused role {logins['viewer']}: permission denied for table triage "
        "(roles are granted with `refund-tui ledger grant`)"
    )
    assert run("b", "claim", short, "--take-over")["entry"]["took_over"] == logins["a"]
    assert run("b", "note", short, "called the customer")["code"] == "noted"

    [listed] = [r for r in run("viewer", "status")["refunds"] if r["attempt_id"] == attempt.attempt_id]
    assert listed["made_by"] == logins["a"]
    exported = json.loads(run_cli(capsys, homes["viewer"], "export", "--format", "json").stdout)
    assert [(row["source"], row["recorded_by"], row["note"]) for row in exported
            if row["attempt_id"] == attempt.attempt_id and row["status"] is None] == [
        ("claim", logins["a"], None),
        ("claim", logins["b"], f"took over from {logins['a']}"),
        ("note", logins["b"], "called the customer"),
    ]  # fmt: skip
