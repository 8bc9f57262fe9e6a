"""The board at 80 columns: the failure reason readable, the footer whole, retried failures
marked and left out of the failed view, ``t`` on one says why. Pilot at 80x24."""

from __future__ import annotations

from refund_tui.core.models import ProviderName
from refund_tui.tui import keys
from refund_tui.tui.screens.board import BoardScreen, BoardTable
from refund_tui.tui.screens.details import DetailsScreen
from tests.console import flat, screen_text, wait_for
from tests.test_tui_board import FAILS, make_refund


async def failed_refunds(sandbox, service, count: int) -> list:
    """``count`` refunds refused with "Recipient wallet not found"."""
    made = [await make_refund(sandbox, service, ending=FAILS) for _ in range(count)]
    sandbox.advance(60)
    await service.track(force=True)
    return made


async def retry(service, failed) -> None:
    """Retry ``failed`` to a wallet that works (a new attempt linked to it)."""
    view = await service.lookup(ProviderName.VESICASH, failed.payment_reference)
    countries = await service.countries(ProviderName.VESICASH)
    ghana = next(country for country in countries if country.iso_code == "GH")
    prepared = service.prepare(
        view, amount="10", reason="Customer cancellation", phone="0241234567",
        country=ghana, retry_of=failed.attempt_id,
    )  # fmt: skip
    await service.submit(prepared)


async def open_board(app, pilot, rows: int) -> BoardScreen:
    await app.run_action("show_board")
    await wait_for(pilot, lambda: isinstance(app.screen, BoardScreen) and app.screen.is_mounted)
    board = app.screen
    await wait_for(pilot, lambda: board.last_data is not None)
    await wait_for(pilot, lambda: board.query_one(BoardTable).row_count == rows)
    await pilot.pause()
    return board


async def test_the_highlighted_failure_is_written_out_in_full_and_the_footer_is_whole(
    sandbox, session, app
):
    await failed_refunds(sandbox, session.service, 1)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_board(app, pilot, 1)
        shown = screen_text(app).splitlines()
        footer = shown[-1]

    assert "Recipient wallet not found" in flat("\n".join(shown))
    for binding in keys.bindings("board"):
        if binding.show and binding.key != "enter":  # the table's own enter hides it
            assert f"{app.get_key_display(binding)} {binding.description}" in footer, footer
    assert "? Help" in footer and "^p Commands" in footer


async def test_a_retried_failure_is_marked_and_leaves_the_failed_view_as_the_banner_counts(
    sandbox, session, app
):
    first, second = await failed_refunds(sandbox, session.service, 2)
    await retry(session.service, first)
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 3)
        table = board.query_one(BoardTable)
        assert table.get_cell(first.attempt_id, "status").plain == "!! retried"
        banner = screen_text(app).splitlines()[0]
        assert "FAILED 1" in banner

        await pilot.press("f")
        await wait_for(pilot, lambda: table.row_count == 1)
        assert list(table.shown) == [second.attempt_id]
        assert "Failed | newest first | 1 shown" in screen_text(app)


async def test_t_on_a_retried_failure_says_why_nothing_happens(sandbox, session, app, monkeypatch):
    [failed] = await failed_refunds(sandbox, session.service, 1)
    await retry(session.service, failed)
    toasts: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **options: toasts.append(message))
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(DetailsScreen(failed.attempt_id))
        await wait_for(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details)
        screen = app.screen
        await pilot.press("t")
        await pilot.pause(0.2)
        assert app.screen is screen
    assert any("already retried as" in toast and "retried once" in toast for toast in toasts)
