"""The team ledger when its database misbehaves, on a throwaway cluster of this test module's
own (tests/postgres.py), so that stopping and restarting its server never touches the shared
one: the server lost and back mid-session, and a password the server really checks."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from refund_tui.core.models import ProviderName
from refund_tui.ledgers.postgres import setup
from tests import postgres
from tests.test_team_ledger import (
    PAYMENTS,
    Team,
    assert_every_refund_accounted_for,
    executed,
    finish_race,
    start_race,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[postgres.Cluster]:
    """A cluster that checks passwords (its superuser excepted), stopped and started at will."""
    found = postgres.binaries()
    if found is None:
        message = "no initdb/pg_ctl: install PostgreSQL (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs PostgreSQL's binaries: {message}")
        pytest.skip(message)
    with postgres.throwaway_cluster(found, passwords=True) as started:
        yield started


@pytest.fixture
def team(cluster, sandbox, tmp_path) -> Iterator[Team]:
    """A team ledger, set up, in a database of its own on the throwaway cluster."""
    cluster.start()  # after a test that failed while it was stopped
    with postgres.session_database(cluster.url) as database_url:
        setup(database_url)
        yield Team(sandbox, database_url, tmp_path)


async def wait_until(pilot, condition, timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held; fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} within {timeout} s"
        await pilot.pause(0.05)
    return time.monotonic() - started


async def test_a_ledger_lost_mid_session_stops_refunds_says_so_and_comes_back(
    team, cluster, sandbox, monkeypatch
):
    """The server goes away under an open console: the banner says the team ledger is lost,
    a refund cannot start (the confirmation says why, nothing is sent); the server comes
    back: the console reconnects by itself, the banner clears, the board reads again."""
    from refund_tui.session import Session
    from refund_tui.tui.app import LEDGER_LOST, RefundApp
    from refund_tui.tui.screens.confirm import ConfirmScreen
    from tests.console import FROZEN, screen_text
    from tests.test_tui_board import open_board, shown

    for variable, value in team.home("b").items():
        monkeypatch.setenv(variable, value)
    session = await asyncio.to_thread(Session.open, "team")
    reference = sandbox.create_payment(**PAYMENTS["novasend"])
    view = await session.service.lookup(ProviderName.NOVASEND, reference)
    prepared = session.service.prepare(view, amount="1000", reason="Customer cancellation")
    app = RefundApp(session=session, clock=lambda: FROZEN)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await open_board(app, pilot, 0)
            await asyncio.to_thread(cluster.stop)
            await wait_until(pilot, lambda: app.ledger_lost is not None, 3, "the loss seen")
            await pilot.pause(0.1)
            assert LEDGER_LOST in screen_text(app)
            assert "cannot reach the team ledger (role postgres at 127.0.0.1:" in app.ledger_lost

            app.open_refund(view)  # a new refund does not even open its form
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen) and len(app.screen_stack) == 1
            app.push_screen(ConfirmScreen(prepared, live=False))  # a form confirmed after the loss
            await pilot.pause()
            await pilot.press(*"1000", "enter")
            await pilot.pause()
            said = screen_text(app)
            assert "Nothing was sent: cannot reach the team ledger" in said
            assert "no refund can start until the team ledger is back" in said
            assert not app.screen.sending
            await pilot.press("escape")

            await asyncio.to_thread(cluster.start)
            other = await asyncio.to_thread(Session.open, "team")  # another operator, at once
            try:
                recorded = await other.service.submit(prepared)
            finally:
                await other.aclose()
            await wait_until(pilot, lambda: app.ledger_lost is None, 5, "reconnected")
            await wait_until(pilot, lambda: recorded.attempt_id in shown(app), 3, "the board re-read")
            assert LEDGER_LOST not in screen_text(app)
        refunds = executed(sandbox, reference)
        assert [r["refund_reference"] for r in refunds] == [recorded.provider_reference]
    finally:
        await session.aclose()


PASSWORD = "correct horse battery 9f3a"


def test_a_keyring_ledger_password_reaches_libpq_after_its_own_sources_and_never_shows(
    team, cluster, monkeypatch, tmp_path
):
    """The cluster checks passwords (SCRAM) for every login but its superuser, so a
    connection that opens has sent the right one. libpq's own sources come first (PGPASSWORD,
    ~/.pgpass); the keyring's ``ledger_password`` only when they give none."""
    import keyring
    from click.testing import CliRunner

    from refund_tui.cli import main
    from tests.memory_keyring import MemoryKeyring

    login = f"{team.prefix}_ama"
    with psycopg.connect(team.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(login), PASSWORD))
        admin.execute(sql.SQL("GRANT refund_tui_operator TO {}").format(sql.Identifier(login)))
    for variable, value in team.home("ama", login).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    previous, memory = keyring.get_keyring(), MemoryKeyring()
    keyring.set_keyring(memory)
    said = []

    def run(*args: str, typed: str | None = None):
        result = CliRunner().invoke(main, list(args), input=typed)
        said.append(result.output)
        return result

    try:
        missing = run("status")
        assert missing.exit_code == 1
        assert missing.output.strip().endswith(
            "asks for a password and none is given: store it with `refund-tui credentials set "
            "--profile team --ledger-password`, or give it to libpq (~/.pgpass, PGPASSWORD or a "
            "service file)"
        )
        stored = run("credentials", "set", "--profile", "team", "--ledger-password",
                     typed=f"{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
        assert stored.exit_code == 0, stored.output
        assert "stored ledger_password for team in the keyring" in stored.output
        assert run("status").exit_code == 0  # the keyring's password, checked by the server
        shown = run("credentials", "status", "--profile", "team", "--provider", "novasend")
        assert "ledger_password keyring" in " ".join(shown.output.split())

        monkeypatch.setenv("PGPASSWORD", "libpq-goes-first")  # libpq's own source wins...
        refused = run("status")
        assert refused.exit_code == 1
        assert f'password authentication failed for user "{login}"' in refused.output
        monkeypatch.delenv("PGPASSWORD")
        assert run("credentials", "delete", "--profile", "team", "--ledger-password").exit_code == 0
        assert memory.entries == {}
        pgpass = tmp_path / "pgpass"  # ...and so does ~/.pgpass, with nothing in the keyring
        pgpass.write_text(f"127.0.0.1:{cluster.port}:*:{login}:{PASSWORD}\n", "utf-8")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
        assert run("status").exit_code == 0
    finally:
        keyring.set_keyring(previous)
    assert all(PASSWORD not in text and "libpq-goes-first" not in text for text in said)


def test_racing_operators_through_a_server_restart_never_over_refund_nor_lose_an_attempt(
    team, cluster, sandbox
):
    """4 processes x 10 refunds of 1,000 on one 20,000 payment; the server crashes (stopped
    at once) and starts again mid-run; then one recovery. Executed refunds never exceed the
    payment, each has its attempt, and every attempt a process was told about is kept."""
    from refund_tui.ledgers.postgres import PostgresLedger

    envs = [team.home(f"op{number}") for number in range(4)]
    payment = sandbox.create_payment(**PAYMENTS["novasend"])
    with PostgresLedger(team.database_url) as owner:
        racers = start_race(sandbox, owner, envs, payment, 10)
        cluster.stop()
        time.sleep(0.3)
        cluster.start()
        seen = finish_race(sandbox, racers, envs[1], 0)  # the recovery: a new process, restarted server
        assert_every_refund_accounted_for(sandbox, owner, payment, seen)
