"""The first screen: refunds that need attention, recent payments, the sandbox's demo payments,
suggestions after a miss, and help from anywhere. Pilot at 80x24 against the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from textual.widgets import Input

from refund_tui.core.models import ProviderName
from refund_tui.sandbox.demo import SEED_PAYMENTS
from refund_tui.tui.app import RefundApp
from refund_tui.tui.screens.details import DetailsScreen
from refund_tui.tui.screens.help import HelpScreen
from refund_tui.tui.screens.lookup import LookupScreen
from refund_tui.tui.widgets.home import HomeList, PaymentRef
from tests.console import flat, screen_text, wait_for
from tests.test_tui_board import COMPLETES, FAILS, STUCK, make_refund


def lines(app) -> list[str]:
    """Every line of the first screen's list, scrolled out of view or not."""
    home = app.screen.query_one(HomeList)
    return [home.get_option_at_index(i).prompt.plain for i in range(home.option_count)]


def line_with(lines: list[str], *words: str) -> str:
    found = [line for line in lines if all(word in line for word in words)]
    assert found, f"no line with {words} in {lines}"
    return found[0]


async def home_read(pilot) -> LookupScreen:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.home is not None)
    await pilot.pause()
    return screen


async def pick(pilot, target: PaymentRef | str) -> None:
    """Down into the list, highlight the line that opens ``target``, enter."""
    home = pilot.app.screen.query_one(HomeList)
    await pilot.press("down")
    option_id = next(key for key, value in home.targets.items() if value == target)
    home.highlighted = home.get_option_index(option_id)
    await pilot.press("enter")


async def test_first_screen_lists_what_needs_attention_recent_payments_and_demos(sandbox, session):
    failed = await make_refund(sandbox, session.service, ending=FAILS)
    stuck = await make_refund(sandbox, session.service, ending=STUCK)
    done = await make_refund(sandbox, session.service, ending=COMPLETES)
    sandbox.advance(60)
    await session.service.track(force=True)
    later = datetime.now(UTC) + timedelta(minutes=5)  # the sandbox's usual time is 1 minute
    app = RefundApp(session=session, clock=lambda: later)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await home_read(pilot)
        shown = lines(app)
        visible = screen_text(app)

    assert {a.attempt_id for a in screen.home.attention} == {failed.attempt_id, stuck.attempt_id}
    assert "Needs attention (2)" in visible
    assert "Recipient wallet not found" in line_with(shown, "!! FAILED", failed.payment_reference)
    assert "stuck 5m, usually < 1m" in line_with(shown, ".. processing", stuck.payment_reference)
    for attempt in (failed, stuck, done):
        assert "refunded" in line_with(shown, attempt.payment_reference, "ago")
    for seed in SEED_PAYMENTS:
        assert seed.shows in line_with(shown, seed.reference + " ")


async def test_enter_on_a_demo_payment_looks_it_up_and_it_becomes_recent(sandbox, app):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await home_read(pilot)
        assert "Sandbox demo payments" in screen_text(app)
        await pick(pilot, PaymentRef(ProviderName.NOVASEND, "tr_demo_partial"))
        await wait_for(pilot, lambda: screen.view is not None)
        assert screen.view.payment.reference == "tr_demo_partial"
        assert "20,000 XOF" in flat(screen_text(app))

        await pilot.press("l")  # back to the lists
        await wait_for(pilot, lambda: screen.view is None and "looked up" in " ".join(lines(app)))
        assert "looked up" in line_with(lines(app), "tr_demo_partial", "ago")
        assert app.focused is screen.query_one("#reference", Input)


async def test_enter_on_a_refund_that_needs_attention_opens_its_details(sandbox, session, app):
    failed = await make_refund(sandbox, session.service, ending=FAILS)
    sandbox.advance(60)
    await session.service.track(force=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await home_read(pilot)
        await pick(pilot, failed.attempt_id)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailsScreen))
        assert app.screen.attempt_id == failed.attempt_id


async def test_a_miss_suggests_the_other_provider_and_close_references(sandbox, app):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await home_read(pilot)
        screen.query_one("#reference", Input).value = "tr_demo_fresh"
        await pilot.press("enter")  # at Vesicash, the default
        await wait_for(pilot, lambda: bool(screen.offered))
        other = PaymentRef(ProviderName.NOVASEND, "tr_demo_fresh")
        assert screen.offered[0] == (other, "looks like a Novasend reference")
        assert "Did you mean" in screen_text(app)
        await pilot.press("down", "enter")  # the first suggestion is highlighted
        await wait_for(pilot, lambda: screen.view is not None)
        assert screen.view.payment.provider is ProviderName.NOVASEND

        await pilot.press("l")
        screen.query_one("#reference", Input).value = "VSC-GH-FRSH"
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(screen.offered))
        close = PaymentRef(ProviderName.VESICASH, "VSC-GH-FRESH")
        assert close in [payment for payment, _ in screen.offered]
        assert "VSC-GH-FRESH" in line_with(lines(app), "a close reference")


async def test_question_mark_in_the_empty_reference_field_opens_help_with_a_sandbox_section(app):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await home_read(pilot)
        assert "? Help" in screen_text(app).splitlines()[-1]
        assert isinstance(app.focused, Input) and app.focused.value == ""
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_text = flat(screen_text(app))
        assert "Sandbox" in help_text and "9901 failed: Recipient wallet not found" in help_text

        await pilot.press("escape", *"VSC?")  # typed once the field has text
        await pilot.pause()
        assert app.screen is screen and screen.query_one("#reference", Input).value == "VSC?"
        await pilot.press("f1")  # F1 opens help from any field
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
