"""The team ledger when its database misbehaves, on a throwaway cluster of this test module's
own (tests/postgres.py), so that stopping and restarting its server never touches the shared
one: the server lost and back mid-session, and a password the server really checks."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest

from refund_tui.core.models import ProviderName
from refund_tui.ledgers.postgres import setup
from tests import postgres
from tests.test_team_ledger import PAYMENTS, Team, executed


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
