"""Lookup -> refund form -> confirmation -> board, driven with keys against the simulator."""

from __future__ import annotations

import dataclasses

from textual.widgets import Button, Input, Select

from refund_tui.core.models import ProviderName
from refund_tui.tui.screens.confirm import ConfirmScreen
from refund_tui.tui.screens.lookup import LookupScreen
from refund_tui.tui.screens.refund_form import RefundFormScreen
from tests.console import flat, screen_text, settle, wait_for

GHANA_MOBILE = "+233241234567"
IVORIAN_MOBILE = "+2250701234567"


async def look_up(pilot, provider: ProviderName, reference: str) -> None:
    """Choose the provider, type the reference, press enter."""
    screen = pilot.app.screen
    assert isinstance(screen, LookupScreen)
    screen.query_one("#provider", Select).value = provider
    field = screen.query_one("#reference", Input)
    field.focus()
    field.value = reference
    await pilot.press("enter")
    await settle(pilot)


async def open_form(pilot, provider: ProviderName, reference: str) -> RefundFormScreen:
    await look_up(pilot, provider, reference)
    await pilot.press("r")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, RefundFormScreen)
    return form


async def type_into(pilot, field: Input, text: str) -> None:
    """Replace a field's text as a paste would (one change event), then type its last key."""
    field.focus()
    await pilot.pause()
    field.value = text[:-1]
    field.cursor_position = len(field.value)
    await pilot.press(text[-1])
    await pilot.pause()


async def test_lookup_refund_confirm_submits_exactly_one_refund(sandbox, session, app):
    reference = sandbox.create_payment(
        "vesicash", 250, "GHS", GHANA_MOBILE, customer_name="Ama Owusu"
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await look_up(pilot, ProviderName.VESICASH, reference)
        panel = flat(screen_text(app))
        assert "250.00 GHS" in panel and "Ama Owusu" in panel and "CAN REFUND" in panel

        await pilot.press("r")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, RefundFormScreen)
        assert form.query_one("#amount", Input).value == "250.00"
        await type_into(pilot, form.query_one("#amount", Input), "100")
        await type_into(pilot, form.query_one("#reason", Input), "Duplicate charge")
        await pilot.press("ctrl+s")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen), screen_text(app)
        shown = flat(screen_text(app))
        assert "Balance after 150.00 GHS" in shown and "+233 24 123 4567" in shown

        await pilot.press("enter")  # nothing typed: nothing sent
        await pilot.pause()
        assert "Type the amount (100.00) to confirm." in flat(screen_text(app))
        assert all(refund["payment_reference"] != reference for refund in sandbox.refunds())

        await pilot.press(*"100.00", "enter")
        await settle(pilot)
        await wait_for(pilot, lambda: app.current_mode == "board")

    mine = [refund for refund in sandbox.refunds() if refund["payment_reference"] == reference]
    assert [(refund["amount"], refund["currency"]) for refund in mine] == [(100, "GHS")]
    attempts = session.ledger.attempts(payment_reference=reference)
    assert len(attempts) == 1 and attempts[0].reason == "Duplicate charge"


async def test_over_cap_amount_and_bad_phone_block_review_with_the_reason_shown(sandbox, app):
    reference = sandbox.create_payment("vesicash", 1850, "GHS", GHANA_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, ProviderName.VESICASH, reference)
        await type_into(pilot, form.query_one("#reason", Input), "Overcharged")
        assert form.query_one("#review", Button).disabled is False

        await type_into(pilot, form.query_one("#amount", Input), "1900")
        assert "over the refundable balance: max 1,850.00 GHS" in flat(screen_text(app))
        assert form.query_one("#review", Button).disabled is True

        await type_into(pilot, form.query_one("#amount", Input), "12.345")
        assert "GHS allows at most 2 decimals" in flat(screen_text(app))

        await type_into(pilot, form.query_one("#amount", Input), "1850")
        await type_into(pilot, form.query_one("#phone", Input), "024123")
        shown = flat(screen_text(app))
        assert "too short for Ghana: 9 digits expected after +233" in shown
        assert "Cannot review yet: fix phone." in shown
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form

        await type_into(pilot, form.query_one("#phone", Input), "0241234567")
        assert "+233 24 123 4567" in flat(screen_text(app))
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
    assert [r for r in sandbox.refunds() if r["payment_reference"] == reference] == []


async def test_novasend_refund_goes_to_the_paying_wallet(sandbox, app):
    reference = sandbox.create_payment("novasend", 15000, "XOF", IVORIAN_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, ProviderName.NOVASEND, reference)
        assert not form.query("#phone") and not form.query("#country")
        shown = flat(screen_text(app))
        assert "+225 07 01 23 4567" in shown
        assert "Novasend always refunds to the wallet that paid." in shown
        await type_into(pilot, form.query_one("#amount", Input), "15001")
        assert "over the refundable balance: max 15,000 XOF" in flat(screen_text(app))


async def test_live_confirmation_never_sends_on_a_bare_enter(sandbox, session, app):
    reference = sandbox.create_payment("novasend", 5000, "XOF", IVORIAN_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await session.service.lookup(ProviderName.NOVASEND, reference)
        prepared = session.service.prepare(view, amount="5000", reason="Overcharged")
        await app.push_screen(ConfirmScreen(prepared, live=True))
        await pilot.pause()
        assert "LIVE REFUND" in screen_text(app)

        await pilot.press(*"5000", "enter")
        await pilot.pause()
        send = app.screen.query_one("#send", Button)
        assert app.focused is send and not send.disabled
        assert session.ledger.attempts(payment_reference=reference) == []

        await pilot.press("enter")
        await settle(pilot)
        await wait_for(pilot, lambda: app.current_mode == "board")
    assert len([r for r in sandbox.refunds() if r["payment_reference"] == reference]) == 1


async def test_read_only_profile_shows_blockers_and_refuses_the_form(sandbox, session, app):
    session.profile = dataclasses.replace(session.profile, refunds_enabled=False)
    session.service.refunds_enabled = False
    reference = sandbox.create_payment("vesicash", 40, "GHS", GHANA_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        await look_up(pilot, ProviderName.VESICASH, reference)
        shown = flat(screen_text(app))
        assert "READ-ONLY" in shown and "REFUNDS ENABLED" not in shown
        assert "CANNOT REFUND" in shown
        assert "- profile 'sandbox' is read-only: refunds are not enabled" in shown
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, LookupScreen)
        assert "Cannot refund: profile 'sandbox' is read-only" in flat(screen_text(app))


async def test_refunded_and_failed_payments_say_why_they_cannot_be_refunded(sandbox, app):
    failed = sandbox.create_payment("vesicash", 40, "GHS", GHANA_MOBILE, status="failed")
    async with app.run_test(size=(80, 24)) as pilot:
        await look_up(pilot, ProviderName.VESICASH, failed)
        assert "the payment is failed, not successful" in flat(screen_text(app))


async def test_unknown_reference_is_a_readable_message(sandbox, app):
    async with app.run_test(size=(80, 24)) as pilot:
        await look_up(pilot, ProviderName.NOVASEND, "tr_does_not_exist")
        shown = flat(screen_text(app))
        assert "Novasend has no payment with reference tr_does_not_exist" in shown
        assert "Traceback" not in shown
        app.screen.query_one("#payment").focus()
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, LookupScreen)
        assert "Look up a payment first" in flat(screen_text(app))


async def confirm_screen(pilot, session, reference: str, amount: str) -> ConfirmScreen:
    """The confirmation for a Novasend refund of ``amount``, as the form would open it."""
    view = await session.service.lookup(ProviderName.NOVASEND, reference)
    prepared = session.service.prepare(view, amount=amount, reason="Overcharged")
    screen = ConfirmScreen(prepared, live=False)
    await pilot.app.push_screen(screen)
    await pilot.pause()
    return screen


async def test_a_refund_made_meanwhile_stops_the_send_with_nothing_sent(sandbox, session, app):
    reference = sandbox.create_payment("novasend", 5000, "XOF", IVORIAN_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        confirm = await confirm_screen(pilot, session, reference, "5000")
        other = await session.service.lookup(ProviderName.NOVASEND, reference)
        meanwhile = session.service.prepare(other, amount="5000", reason="Overcharged")
        await session.service.submit(meanwhile)

        await pilot.press(*"5000", "enter")
        await settle(pilot)
        assert app.screen is confirm
        assert "Nothing was sent: only 0 XOF left to refund" in flat(screen_text(app))
    assert len([r for r in sandbox.refunds() if r["payment_reference"] == reference]) == 1


async def test_quitting_while_a_refund_is_sent_needs_a_second_ctrl_q(sandbox, session, app):
    reference = sandbox.create_payment("novasend", 5000, "XOF", IVORIAN_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        await confirm_screen(pilot, session, reference, "5000")
        sandbox.faults(latency_ms=400)
        await pilot.press(*"5000", "enter", "ctrl+q")
        await pilot.pause()
        assert app.return_code is None
        await settle(pilot)
        await wait_for(pilot, lambda: app.current_mode == "board")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.return_code == 0


async def test_f2_switches_the_provider_without_leaving_the_reference(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        provider = app.screen.query_one("#provider", Select)
        assert provider.value is ProviderName.VESICASH
        await pilot.press("f2")
        assert provider.value is ProviderName.NOVASEND
        assert app.focused is app.screen.query_one("#reference", Input)
        await pilot.press("f2")
        assert provider.value is ProviderName.VESICASH


async def test_r_refuses_while_the_reference_field_names_another_payment(sandbox, app):
    shown = sandbox.create_payment("vesicash", 250, "GHS", GHANA_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        await look_up(pilot, ProviderName.VESICASH, shown)
        app.screen.query_one("#reference", Input).value = "VSC-SOMETHING-ELSE"
        await pilot.press("r")
        await pilot.pause()

        assert not isinstance(app.screen, RefundFormScreen)
        assert "press enter in the field to look it up first" in flat(screen_text(app))
