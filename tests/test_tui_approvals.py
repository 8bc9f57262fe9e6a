"""The approvals queue in the console at 80x24: an approver's session on the team ledger (a real
PostgreSQL login), the operator's requests made by the real CLI; money counted on the simulator."""

from __future__ import annotations

import asyncio
import json

import pytest

from refund_tui.core.models import ProviderName
from refund_tui.session import Session
from refund_tui.tui.app import RefundApp
from refund_tui.tui.screens.approvals import ApprovalsScreen, ApproveScreen
from refund_tui.tui.screens.board import BoardScreen
from refund_tui.tui.screens.confirm import ConfirmScreen
from refund_tui.tui.screens.note import NoteScreen
from tests.console import FROZEN, flat, screen_text, settle, wait_for
from tests.test_team_approvals import team  # noqa: F401 (the fixture)
from tests.test_team_ledger import PAYMENTS, executed, refund_args


async def open_session(team, who: str, monkeypatch) -> Session:  # noqa: F811
    for variable, value in team.envs[who].items():
        monkeypatch.setenv(variable, value)
    return await asyncio.to_thread(Session.open, "team")


def ask(team, sandbox, amount: str) -> tuple[str, str]:  # noqa: F811
    """The operator's refund over the threshold, by the CLI: (payment, attempt id)."""
    reference = sandbox.create_payment(**PAYMENTS["novasend"])
    asked = team.run("operator", *refund_args("novasend", reference, amount), "--json")
    assert asked.returncode == 0, asked.stderr
    return reference, json.loads(asked.stdout)["refund"]["attempt_id"]


async def test_the_queue_shows_who_asked_denies_with_a_reason_and_approves_once(team, sandbox, monkeypatch):  # noqa: F811
    approve_ref, approve_id = ask(team, sandbox, "6000")
    deny_ref, deny_id = ask(team, sandbox, "7000")
    session = await open_session(team, "approver", monkeypatch)
    app = RefundApp(session=session, clock=lambda: FROZEN)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.banner_info.awaiting == 2)
            assert "TO APPROVE 2" in screen_text(app)
            await pilot.press("escape", "A")
            await wait_for(pilot, lambda: isinstance(app.screen, ApprovalsScreen) and app.screen.queue is not None)
            text = flat(screen_text(app))
            assert "2 refund(s) await your approval" in text and f"{team.prefix}_operator" in text
            assert "approval needed above 5,000 XOF" in text

            await pilot.press("down")
            app.screen.load()  # a re-read (another process's change) keeps the highlighted refund
            await settle(pilot)
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen))
            assert "7,000 XOF" in flat(screen_text(app))
            await pilot.press("enter")  # no reason: nothing happens
            assert isinstance(app.screen, NoteScreen)
            await pilot.press(*"no ticket", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ApprovalsScreen) and len(app.screen.queue.waiting) == 1)
            assert session.ledger.get(deny_id).status.value == "denied"

            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ApproveScreen))
            text = flat(screen_text(app))
            assert "Asked by" in text and "Customer cancellation" in text and "6,000 XOF" in text
            await pilot.press(*"6000", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, BoardScreen), timeout=15)
            await settle(pilot)
            assert session.ledger.get(approve_id).provider_reference is not None
    finally:
        await session.aclose()
    assert len(executed(sandbox, approve_ref)) == 1 and executed(sandbox, deny_ref) == []


async def test_the_operator_sees_awaiting_approval_and_the_daily_limit_in_the_console(team, sandbox, monkeypatch):  # noqa: F811
    reference, attempt_id = ask(team, sandbox, "6000")
    session = await open_session(team, "operator", monkeypatch)
    app = RefundApp(session=session, clock=lambda: FROZEN)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("escape", "b")
            await wait_for(pilot, lambda: "awaiting approval" in screen_text(app))
            other = sandbox.create_payment(**PAYMENTS["vesicash"])
            view = await session.service.lookup(ProviderName.VESICASH, other)
            country = await session.service.refund_country(view, None)
            prepared = session.service.prepare(view, amount="460", reason="Overcharged", country=country)
            await app.push_screen(ConfirmScreen(prepared, live=False))
            await pilot.pause()
            await pilot.press(*"460", "enter")
            await settle(pilot)
            shown = flat(screen_text(app))
            assert "Nothing was sent: over the daily limit of role" in shown
            assert "450.00 GHS a day" in shown and "450.00 GHS left today" in shown
    finally:
        await session.aclose()
    assert executed(sandbox, other) == [] and executed(sandbox, reference) == []
    assert attempt_id


@pytest.fixture(autouse=True)
def _no_keyring(monkeypatch):
    """Sessions here read credentials from the environment only."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")


def test_an_approver_approves_in_the_real_console_at_80x24(team, sandbox):  # noqa: F811
    """tmux, the approver's own process: banner count, queue, typed amount, sent once."""
    import contextlib
    import subprocess
    import sys
    import uuid

    from tests.test_tui_tmux import REPO, Pane

    reference, attempt_id = ask(team, sandbox, "6000")
    pane = Pane(f"refund-tui-test-{uuid.uuid4().hex[:8]}")
    env = [f"-e{name}={value}" for name, value in team.envs["approver"].items() if name.startswith("REFUND_TUI_")]
    command = f"{sys.executable} -m refund_tui"
    pane.tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", "-c", str(REPO), *env, command)
    try:
        pane.wait_for("TO APPROVE 1", "Recent payments")
        for _ in range(10):  # the banner's count is read before the providers are connected
            pane.send("Escape", "A")
            with contextlib.suppress(AssertionError):
                queue = pane.wait_for("1 refund(s) await your approval", "6,000 XOF", timeout=2)
                break
        else:
            queue = pane.wait_for("1 refund(s) await your approval", "6,000 XOF")
        assert f"{team.prefix}_operator" in queue
        pane.send("Enter")
        pane.wait_for("APPROVE another operator's refund", "Asked by", "Type 6000 to confirm")
        pane.send("6000", "Enter")
        pane.wait_for("Refund submitted", timeout=30)
    finally:
        subprocess.run(["tmux", "-L", pane.socket, "kill-server"], capture_output=True)
    assert len(executed(sandbox, reference)) == 1
    assert attempt_id


async def test_on_a_solo_ledger_the_queue_says_approvals_need_a_team_ledger(session, app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("escape", "A")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalsScreen) and app.screen.queue is not None)
        text = flat(screen_text(app))
        assert "Approvals need a team ledger (PostgreSQL)" in text
        assert "every refund is sent at once" in text
