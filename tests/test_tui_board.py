"""The live status board, driven with keys against the simulator over real HTTP."""

from __future__ import annotations

import dataclasses
import threading

from refund_tui.core.ledger import Attempt
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.operator import Operator
from refund_tui.core.provider import RefundRequest
from refund_tui.tui.screens import board as board_module
from refund_tui.tui.screens.board import BoardScreen, BoardTable
from refund_tui.tui.screens.details import DetailsScreen
from tests.console import FAST_INTERVAL, FROZEN, wait_for

PAYMENTS = {
    ProviderName.VESICASH: dict(provider="vesicash", amount=500, currency="GHS"),
    ProviderName.NOVASEND: dict(provider="novasend", amount=20000, currency="XOF"),
}
PHONES = {ProviderName.VESICASH: "+23324123{}", ProviderName.NOVASEND: "+225070123{}"}
#: Last four digits that make the simulator settle a refund a given way.
COMPLETES, FAILS, STUCK = "4567", "9901", "9904"


async def make_refund(
    sandbox,
    service,
    *,
    provider: ProviderName = ProviderName.VESICASH,
    ending: str = COMPLETES,
    amount: str = "10",
    reason: str = "Customer cancellation",
) -> Attempt:
    """A refund made through the service, settling as the phone's last digits say."""
    reference = sandbox.create_payment(**PAYMENTS[provider], phone=PHONES[provider].format(ending))
    view = await service.lookup(provider, reference)
    country = None
    if service.provider(provider).sends_phone:
        country = next(c for c in await service.countries(provider) if c.iso_code == view.country)
    prepared = service.prepare(view, amount=amount, reason=reason, country=country)
    return await service.submit(prepared)


def table(app) -> BoardTable:
    return app.screen.query_one(BoardTable)


def shown(app) -> list[str]:
    """Attempt ids in the board's display order."""
    board = table(app)
    return [board.coordinate_to_cell_key((row, 0)).row_key.value for row in range(board.row_count)]


def status_cell(app, attempt_id: str) -> str:
    return table(app).get_cell(attempt_id, "status").plain


async def open_board(app, pilot, expected_rows: int) -> BoardScreen:
    await app.run_action("show_board")

    def ready() -> bool:
        """On the board, its first read of the ledger shown (an empty table is not enough)."""
        tables = app.screen.query(BoardTable)
        on_board = isinstance(app.screen, BoardScreen) and bool(tables)
        loaded = on_board and app.screen.last_data is not None
        return loaded and tables.first().row_count == expected_rows

    await wait_for(pilot, ready)
    return app.screen


async def test_board_shows_a_refund_and_it_settles_live(sandbox, session, app):
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 0)
        assert "updated 14:02:11" in str(board.query_one("#board-clock").content)
        attempt = await make_refund(sandbox, session.service)  # e.g. from another terminal

        await wait_for(pilot, lambda: attempt.attempt_id in shown(app))
        await wait_for(pilot, lambda: status_cell(app, attempt.attempt_id) == "ok completed")

    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.COMPLETED


async def test_new_refunds_arrive_on_top_and_the_cursor_stays_on_its_row(sandbox, session, app):
    older = [await make_refund(sandbox, session.service) for _ in range(3)]
    async with app.run_test(size=(80, 24)) as pilot:
        await open_board(app, pilot, 3)
        await pilot.press("down")
        chosen = table(app).highlighted_key
        assert chosen == older[1].attempt_id

        newest = await make_refund(sandbox, session.service, ending=FAILS)
        sandbox.advance(60)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: table(app).row_count == 4)

        assert shown(app)[0] == newest.attempt_id
        assert table(app).highlighted_key == chosen
        assert status_cell(app, newest.attempt_id) == "!! FAILED"
        mark, *failed_row = table(app).get_row(newest.attempt_id)  # the selection mark, then the cells
        assert mark.plain == " " and all(cell.style == "bold red" for cell in failed_row)


async def test_filter_matches_text_and_esc_clears_it(sandbox, session, app):
    plain = await make_refund(sandbox, session.service)
    late = await make_refund(sandbox, session.service, reason="Order not delivered")
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 2)

        await pilot.press("slash", *"deliv")
        await wait_for(pilot, lambda: shown(app) == [late.attempt_id])
        assert 'matching "deliv"' in str(board.query_one("#board-scope").content)

        await pilot.press("escape")
        await wait_for(pilot, lambda: len(shown(app)) == 2)
        assert not board.query_one("#board-filter").display

        await pilot.press("slash", *plain.payment_reference.lower(), "enter")
        await wait_for(pilot, lambda: shown(app) == [plain.attempt_id])
        assert table(app).has_focus


async def test_filter_text_is_shown_literally(sandbox, session, app):
    await make_refund(sandbox, session.service)
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 1)
        await pilot.press("slash", *"[/b", "enter")
        await wait_for(pilot, lambda: table(app).row_count == 0)
        assert 'matching "[/b"' in str(board.query_one("#board-scope").content)


async def test_quick_filters_show_failed_in_flight_or_all(sandbox, session, app):
    done = await make_refund(sandbox, session.service)
    failed = await make_refund(sandbox, session.service, ending=FAILS)
    stuck = await make_refund(sandbox, session.service, ending=STUCK)
    sandbox.advance(60)
    await session.service.track(force=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_board(app, pilot, 3)

        await pilot.press("f")
        await wait_for(pilot, lambda: shown(app) == [failed.attempt_id])
        await pilot.press("i")
        await wait_for(pilot, lambda: shown(app) == [stuck.attempt_id])
        await pilot.press("a")
        everything = {done.attempt_id, failed.attempt_id, stuck.attempt_id}
        await wait_for(pilot, lambda: set(shown(app)) == everything)


async def test_sort_cycles_time_amount_status(sandbox, session, app):
    small = await make_refund(sandbox, session.service, amount="5", ending=FAILS)
    large = await make_refund(sandbox, session.service, amount="50")
    medium = await make_refund(sandbox, session.service, amount="20")
    sandbox.advance(60)
    await session.service.track(force=True)
    by_time = [medium.attempt_id, large.attempt_id, small.attempt_id]
    async with app.run_test(size=(80, 24)) as pilot:
        await open_board(app, pilot, 3)
        assert shown(app) == by_time

        await pilot.press("s")
        by_amount = [large.attempt_id, medium.attempt_id, small.attempt_id]
        await wait_for(pilot, lambda: shown(app) == by_amount)
        await pilot.press("s")
        by_status = [small.attempt_id, medium.attempt_id, large.attempt_id]  # failed first
        await wait_for(pilot, lambda: shown(app) == by_status)
        assert "needs attention first" in str(app.screen.query_one("#board-scope").content)
        await pilot.press("s")
        await wait_for(pilot, lambda: shown(app) == by_time)


async def test_pause_stops_live_updates_until_resumed(sandbox, session, fast_refresh, app):
    await make_refund(sandbox, session.service)
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 1)

        await pilot.press("p")
        assert str(board.query_one("#board-clock").content).startswith("PAUSED")
        await make_refund(sandbox, session.service)
        await pilot.pause(FAST_INTERVAL * 4)
        assert table(app).row_count == 1

        await pilot.press("p")
        await wait_for(pilot, lambda: table(app).row_count == 2)
        assert "PAUSED" not in str(board.query_one("#board-clock").content)


async def test_enter_opens_the_highlighted_refund(sandbox, session, app):
    first = await make_refund(sandbox, session.service)
    await make_refund(sandbox, session.service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_board(app, pilot, 2)
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailsScreen))
        assert app.screen.attempt_id == first.attempt_id


async def test_enter_pressed_before_the_first_rows_show_opens_the_top_refund(sandbox, session, app, monkeypatch):
    """The board paints before its first read of the ledger ends; an enter pressed then, to
    open the newest refund, is acted on once the rows show, not lost on the empty table."""
    attempt = await make_refund(sandbox, session.service)
    rows_read = threading.Event()
    read_board = board_module.read_board

    def slow_read(*args, **kwargs):
        rows_read.wait(10)
        return read_board(*args, **kwargs)

    monkeypatch.setattr(board_module, "read_board", slow_read)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.run_action("show_board")
        await wait_for(pilot, lambda: isinstance(app.focused, BoardTable))
        await pilot.press("enter")
        rows_read.set()

        await wait_for(pilot, lambda: isinstance(app.screen, DetailsScreen))
        assert app.screen.attempt_id == attempt.attempt_id


async def test_in_place_update_touches_only_changed_cells(sandbox, session, app):
    attempts = [await make_refund(sandbox, session.service) for _ in range(3)]
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 3)
        data = board_module.read_board(session.ledger, board.query_state, FROZEN)
        board.apply(data)  # whatever background tracking changed meanwhile
        assert board.apply(data) == 0

        changed = dataclasses.replace(
            attempts[0], status=RefundStatus.FAILED, failure_reason="Nope"
        )
        others = [a for a in data.attempts if a.attempt_id != changed.attempt_id]
        changes = board.apply(dataclasses.replace(data, attempts=[*others, changed]))

        assert changes == len(board_module.COLUMN_KEYS)  # one row repainted whole: it failed
        assert shown(app)[-1] == changed.attempt_id


def test_text_filter_searches_every_field():
    attempt_fields = dict(
        payment_reference="VSC-ABC", provider_reference="VRF-123", phone="+233241234567",
        reason="Duplicate charge", failure_reason="Recipient wallet not found",
    )  # fmt: skip
    fake = _attempt(**attempt_fields)
    for text in ("vsc-abc", "vrf-1", "24123", "duplicate", "wallet not", "failed", "vesicash"):
        assert board_module.matches(fake, text.split()), text
    assert not board_module.matches(fake, ["novasend"])
    assert not board_module.matches(fake, ["duplicate", "novasend"])


def _attempt(**fields) -> Attempt:
    base = dict(
        attempt_id="a1", created_at=FROZEN, profile="sandbox", environment="sandbox",
        provider=ProviderName.VESICASH, payment_reference="P", amount=Money(1000, "GHS"),
        phone="+233", country_id="83", reason="r", webhook_url=None,
        request=RefundRequest(ProviderName.VESICASH, "P", "POST", "/x", "{}", None, "ext", Money(800, "GHS")),
        operator=Operator("op", 1, "host", None), pid=1, app_version="0", retry_of=None,
        status=RefundStatus.FAILED, provider_reference=None, failure_reason=None, raw_code=None,
        raw_message=None, updated_at=FROZEN, flagged=False,
    )  # fmt: skip
    return Attempt(**(base | fields))


async def test_board_column_widths_as_datatable_measures():
    """BoardTable widens its columns by each cell's length; DataTable itself measures every
    cell through the console. Both give the same widths, wide characters included."""
    from rich.text import Text
    from textual.app import App
    from textual.widgets import DataTable

    rows = [
        (Text("12-01 09:15"), Text("FAILED", style="bold red"), Text("支付参考号 tr_1")),
        (Text("12-01 09:16"), Text("done"), Text.assemble(("@ana", "bold reverse"), " ", Text("🙂 ok"))),
        (Text("12-01 09:17"), Text("UNKNOWN, resend?"), Text("")),
    ]

    class Tables(App[None]):
        def compose(self):
            yield BoardTable()
            yield DataTable(id="plain")

    async with Tables().run_test(size=(100, 30)) as pilot:
        board, plain = pilot.app.query_one(BoardTable), pilot.app.query_one("#plain", DataTable)
        for one in (board, plain):
            one.clear(columns=True)
            for label in ("time", "status", "payment"):
                one.add_column(label, key=label)
            for number, cells in enumerate(rows):
                one.add_row(*cells, key=f"row{number}")
        await pilot.pause()
        widths = [column.content_width for column in board.ordered_columns]
        assert widths == [column.content_width for column in plain.ordered_columns]
        assert widths == [11, 16, 15]
        assert board.virtual_size == plain.virtual_size


async def test_board_styles_follow_a_theme_changed_while_hidden(sandbox, session, app):
    """The board is styled as it mounts, without restyling the app; a theme changed while
    it is hidden restyles it when it is shown again."""
    from textual.color import Color

    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 0)
        assert board.query_one("#board-detail").styles.height.cells == 2
        assert board.styles.background == Color.parse(app.get_css_variables()["background"])
        await app.run_action("show_lookup")
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.pause()
        await app.run_action("show_board")
        await pilot.pause()
        assert app.screen is board
        assert board.styles.background == Color.parse(app.get_css_variables()["background"])


async def test_pause_pressed_before_the_rest_of_the_rows_are_read_holds(sandbox, session, app, monkeypatch):
    """The board's first page is painted before the rest is read; ``p`` pressed in between
    keeps the board as it is: nothing more is read while paused."""
    for _ in range(2):
        await make_refund(sandbox, session.service)
    reads: list[int] = []
    read = board_module.read_board

    def counted(ledger, query, at, limit=board_module.ROW_LIMIT):
        reads.append(limit)
        return read(ledger, query, at, limit)

    monkeypatch.setattr(board_module, "read_board", counted)
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 2)
        await pilot.pause()
        reads.clear()
        board._show(BoardScreen.Loaded(read(session.ledger, board.query_state, FROZEN, 1)))  # a first page
        board.action_toggle_pause()  # p, handled before the screen's next refresh
        for _ in range(5):
            await pilot.pause(0.05)
        assert board.paused and reads == []
        assert table(app).row_count == 1
