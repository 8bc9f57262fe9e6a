"""Triage as a team in the console, by keys at 80x24: who made each refund, mine / by:NAME,
claims (o: claim, release, take over after asking) and notes (n) seen by everyone."""

from __future__ import annotations

import dataclasses

from refund_tui.core.ledger import TriageAction, whoami
from refund_tui.core.models import RefundStatus
from refund_tui.tui.screens.board import BoardTable
from refund_tui.tui.screens.claims import TakeOverScreen
from refund_tui.tui.screens.details import DetailsScreen
from refund_tui.tui.screens.note import NoteScreen
from tests.console import flat, screen_text, wait_for
from tests.ledger.factories import OPERATOR, new_attempt, xof
from tests.test_tui_board import make_refund, open_board

KOFI = dataclasses.replace(OPERATOR, name="kofi", uid=1002, hostname="oncall-2", ssh_client="10.0.0.9:52314")


def kofis_refund(ledger) -> str:
    """A settled refund another OS account made on this ledger."""
    new = dataclasses.replace(new_attempt(xof(700), payment="tr_kofi"), operator=KOFI)
    attempt = ledger.record_attempt(new, limit=xof(1000), known_references=())
    ledger.add_event(attempt.attempt_id, RefundStatus.COMPLETED, "provider", provider_reference="rf_kofi")
    return attempt.attempt_id


def cell(app, attempt_id: str, column: str) -> str:
    return app.screen.query_one(BoardTable).get_cell(attempt_id, column).plain


async def test_the_board_names_who_made_each_refund_and_filters_mine_or_by_name(sandbox, session, app):
    me = whoami(session.ledger, session.service.operator)
    mine = await make_refund(sandbox, session.service)
    theirs = kofis_refund(session.ledger)
    async with app.run_test(size=(80, 24)) as pilot:
        board = await open_board(app, pilot, 2)
        assert me.startswith(cell(app, mine.attempt_id, "by").removesuffix("..."))
        assert cell(app, theirs, "by") == "kofi"
        assert "| by kofi: Duplicate charge" in flat(screen_text(app))  # the newest, highlighted

        await pilot.press("w")
        await wait_for(pilot, lambda: list(board.query_one(BoardTable).shown) == [mine.attempt_id])
        assert "All refunds | mine | newest first | 1 shown" in screen_text(app)
        await pilot.press("w")
        await wait_for(pilot, lambda: board.query_one(BoardTable).row_count == 2)

        await pilot.press("slash", *"by:kofi", "enter")
        await wait_for(pilot, lambda: list(board.query_one(BoardTable).shown) == [theirs])
        assert "All refunds | by kofi | newest first | 1 shown" in screen_text(app)


async def test_o_claims_for_everyone_and_takes_over_someone_elses_claim_only_when_confirmed(
    sandbox, session, app
):
    me = whoami(session.ledger, session.service.operator)
    theirs = kofis_refund(session.ledger)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_board(app, pilot, 1)
        session.ledger.claim(theirs, KOFI)  # from kofi's own console: the change watch brings it
        await wait_for(pilot, lambda: cell(app, theirs, "reason").startswith("@kofi "))
        assert "on it: kofi" in flat(screen_text(app))

        await pilot.press("o")
        await wait_for(pilot, lambda: "Take it over?" in screen_text(app))
        assert isinstance(app.screen, TakeOverScreen) and "kofi since " in screen_text(app)
        assert "(kofi@oncall-2 via" in screen_text(app)
        await pilot.press("escape")  # leave it: nothing is written
        await pilot.pause()
        assert session.ledger.claims()[theirs].who == "kofi"

        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, TakeOverScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: cell(app, theirs, "reason").startswith("@") and "kofi" not in cell(app, theirs, "reason"))
        claim = session.ledger.claims()[theirs]
        assert (claim.who, claim.took_over) == (me, "kofi")

        await pilot.press("o")  # mine: o releases it
        await wait_for(pilot, lambda: not cell(app, theirs, "reason").startswith("@"))
        assert session.ledger.claims() == {}
        assert [e.action for e in session.ledger.triage_log(theirs)] == ["claim", "claim", "release"]


async def test_details_say_who_is_on_it_and_keep_a_note_in_the_timeline(sandbox, session, app):
    attempt = await make_refund(sandbox, session.service)
    me = whoami(session.ledger, session.service.operator)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_board(app, pilot, 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details is not None)
        assert "On it nobody (o: I'm on it, n: a note)" in flat(screen_text(app))

        await pilot.press("o")
        await wait_for(pilot, lambda: app.screen.details.claim is not None)
        assert f"On it {me} since " in flat(screen_text(app))

        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen))
        await pilot.press(*"called the customer", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailsScreen) and len(app.screen.details.triage) == 2)
        # A hostile note (from another console or the CLI) reaches the screen as plain text.
        session.ledger.add_note(attempt.attempt_id, "wallet \x1b]0;owned\x07closed\x1b[2J\u202e", KOFI)
        await wait_for(pilot, lambda: len(app.screen.details.triage) == 3)
        app.screen.query_one("#details-timeline").scroll_visible(top=True, animate=False)
        await pilot.pause()
        text = flat(screen_text(app))
    assert f"note {me} (" in text and "called the customer" in text, text
    assert "kofi (kofi@oncall-2 via 10.0.0.9:52314): wallet closed" in text
    assert "\x1b" not in text and "\u202e" not in text
    log = session.ledger.triage_log(attempt.attempt_id)
    assert [(entry.action, entry.note) for entry in log[:2]] == [
        (TriageAction.CLAIM, None), (TriageAction.NOTE, "called the customer"),
    ]  # fmt: skip
