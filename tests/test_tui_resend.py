"""The console's side of never paying twice: an unknown Vesicash refund explains itself, a
resend is an operator's decision after the evidence, and a double refund is shown everywhere."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from textual.widgets import Input

from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.tui.screens.details import DetailsScreen
from refund_tui.tui.screens.resend import ResendScreen
from tests.console import flat, screen_text, wait_for
from tests.test_tui_board import STUCK, make_refund
from tests.test_tui_details import executed, open_details
from tests.test_tui_details import screen_text as details_text


async def test_an_unknown_vesicash_refund_says_what_it_waits_for_and_resends_on_decision(
    sandbox, session, app
):
    sandbox.faults(fail_refunds_next=1)
    attempt = await make_refund(sandbox, session.service)
    assert attempt.status is RefundStatus.UNKNOWN

    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_details(app, pilot, attempt.attempt_id)
        explained = flat(details_text(screen))
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ResendScreen))
        refused = flat(screen_text(app))
        typed_disabled = app.screen.query_one("#typed", Input).disabled
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailsScreen))

        session.service.resend_quiet = timedelta(seconds=0.1)
        await asyncio.sleep(0.2)
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ResendScreen))
        offered = flat(screen_text(app))
        await pilot.press(*attempt.amount.plain(), "enter")
        sent = lambda: len(executed(sandbox, attempt.payment_reference)) == 1  # noqa: E731
        await wait_for(pilot, sent, timeout=15)
        await wait_for(pilot, lambda: not isinstance(app.screen, ResendScreen))

    assert f"to show a refund tagged [{attempt.request.external_reference}]" in explained
    assert "never resent automatically" in explained and "Press R" in explained
    assert "may still be executing" in refused and typed_disabled
    assert "0 refund(s), none" in offered and "paid twice" in offered
    resent = session.ledger.get(attempt.attempt_id)
    assert resent.provider_reference == executed(sandbox, attempt.payment_reference)[0]["refund_reference"]


async def test_a_double_refund_is_shown_in_the_banner_board_and_details(sandbox, session, app):
    attempt = await make_refund(sandbox, session.service)
    provider = session.service.provider(ProviderName.VESICASH)
    await provider.send_refund(attempt.request)  # the same request executed a second time
    await session.service.track(force=True)
    [second] = session.ledger.get(attempt.attempt_id).double_refunds

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.banner_info.paid_twice == 1)
        await pilot.press("escape", "b")  # leave the reference field, open the board
        await wait_for(pilot, lambda: "PAID TWICE" in screen_text(app).split("\n", 1)[1])
        board = screen_text(app)
        screen = await open_details(app, pilot, attempt.attempt_id)
        details = flat(details_text(screen))

    assert "PAID TWICE 1" in board.splitlines()[0]
    assert f"executed this refund again as {second}" in details
    assert "reverse" in details


async def test_a_refund_stuck_beyond_the_usual_time_says_whom_to_escalate_to(
    sandbox, session, app
):
    from datetime import UTC, datetime, timedelta

    attempt = await make_refund(sandbox, session.service, ending=STUCK)
    sandbox.advance(60)
    await session.service.track(force=True)
    app.clock = lambda: datetime.now(UTC) + timedelta(hours=2)

    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_details(app, pilot, attempt.attempt_id)
        explained = flat(details_text(screen))

    stuck = session.ledger.get(attempt.attempt_id)
    assert stuck.status is RefundStatus.PROCESSING
    assert "Stuck: processing for 2h, while Vesicash usually settles within 1m" in explained
    assert f"Escalate to Vesicash support with refund {stuck.provider_reference}" in explained
