"""Bulk triage on the board itself, driven with keys against the simulator over real HTTP."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable

from refund_tui.core.models import RefundStatus
from refund_tui.tui.screens.board import BoardScreen, BoardTable
from refund_tui.tui.screens.count_confirm import CountConfirmScreen
from refund_tui.tui.screens.triage import TriageScreen
from tests.console import flat, screen_text, wait_for
from tests.test_tui_board import FAILS, make_refund, open_board


async def failed_and_unknown(sandbox, session):
    failed = [await make_refund(sandbox, session.service, ending=FAILS) for _ in range(3)]
    await asyncio.sleep(sandbox.settle_seconds * 4)
    await session.service.track(force=True)
    sandbox.faults(fail_refunds_next=1)
    unknown = await make_refund(sandbox, session.service)  # Vesicash: never resent on its own
    assert [session.ledger.get(a.attempt_id).status for a in failed] == [RefundStatus.FAILED] * 3
    assert session.ledger.get(unknown.attempt_id).status is RefundStatus.UNKNOWN
    return failed, unknown


def selection(app) -> str:
    line = app.screen.query_one("#board-selection")
    return str(line.content) if line.display else ""


def marks(app) -> list[str]:
    """The selection column, top to bottom."""
    table = app.screen.query_one(BoardTable)
    return [table.get_cell(key, "mark").plain for key in table.order]


def progress(app) -> str:
    return str(app.screen.query_one("#triage-progress").content)


async def test_select_all_shown_retry_the_failed_with_a_typed_count_then_resolve_the_unknown(sandbox, session, app):
    failed, unknown = await failed_and_unknown(sandbox, session)
    completed = await make_refund(sandbox, session.service)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_board(app, pilot, 5)

        await pilot.press("asterisk")
        assert selection(app) == "4 selected (3 failed, 1 unknown): 40.00 GHS  t retry  v resolve"
        assert sorted(marks(app)) == [" ", "*", "*", "*", "*"]
        assert app.screen.query_one(BoardTable).get_cell(completed.attempt_id, "mark").plain == " "
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, CountConfirmScreen))
        assert str(app.screen.query_one("#bulk-summary").content).startswith(
            "SANDBOX: Retry 3 failed refunds, totalling 30.00 GHS: each a new attempt with its own key"
        )
        await pilot.press("4", "enter")
        assert "type exactly 3 to go ahead" in flat(screen_text(app))
        await pilot.press("backspace", "3", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen))
        await wait_for(pilot, lambda: progress(app).startswith("3 of 3 done: finished"), timeout=10)
        results = app.screen.query_one(DataTable)
        assert all(results.get_cell(a.attempt_id, "result").plain.startswith("retried as") for a in failed)

        for attempt in failed:
            [retry] = session.ledger.attempts(retry_of=attempt.attempt_id)
            assert retry.request.external_reference != attempt.request.external_reference  # its own tag
            assert retry.amount == attempt.amount and retry.phone == attempt.phone

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, BoardScreen))
        await wait_for(pilot, lambda: selection(app) == "1 selected (0 failed, 1 unknown): 10.00 GHS  t retry  v resolve")
        await pilot.press("t")  # nothing failed is selected now
        assert isinstance(app.screen, BoardScreen)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, CountConfirmScreen))
        await pilot.press("1", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen))
        await wait_for(pilot, lambda: progress(app).startswith("1 of 1 done: finished"), timeout=10)
        result = app.screen.query_one(DataTable).get_cell(unknown.attempt_id, "result").plain
        assert result.startswith("waiting: the payment record shows no refund tagged")
        assert session.ledger.get(unknown.attempt_id).status is RefundStatus.UNKNOWN
        assert not [r for r in sandbox.refunds() if r["payment_reference"] == unknown.payment_reference]


async def test_space_and_shift_arrows_select_on_the_board_and_esc_in_the_confirmation_does_nothing(sandbox, session, app):
    await failed_and_unknown(sandbox, session)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_board(app, pilot, 4)

        await pilot.press("shift+down", "shift+down")
        assert selection(app).startswith("3 selected")
        assert marks(app) == ["*", "*", "*", " "]
        await pilot.press("space")  # the third one again: unselected
        assert selection(app).startswith("2 selected")
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, CountConfirmScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, BoardScreen))
        assert selection(app).startswith("2 selected")

        await pilot.press("asterisk", "asterisk")  # all shown, then none
        assert selection(app) == "" and marks(app) == [" "] * 4
        assert all(not session.ledger.attempts(retry_of=a.attempt_id) for a in session.ledger.attempts())


async def test_a_completed_refund_is_not_selected_and_a_row_filtered_away_leaves_the_selection(sandbox, session, app):
    failed, _ = await failed_and_unknown(sandbox, session)
    completed = await make_refund(sandbox, session.service)
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 5)
        table = board.query_one(BoardTable)
        table.move_cursor(row=table.get_row_index(completed.attempt_id))
        await pilot.press("space")
        assert selection(app) == ""

        await pilot.press("asterisk")
        assert selection(app).startswith("4 selected")
        await pilot.press("f")  # the failed view: the unknown one is no longer shown
        await wait_for(pilot, lambda: table.row_count == 3)
        assert selection(app).startswith("3 selected (3 failed, 0 unknown)")
        assert table.selected == {a.attempt_id for a in failed}
        assert "3 selected" in screen_text(app)  # at 80x24 too
