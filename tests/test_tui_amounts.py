"""Whitespace inside an amount in the console: the refund form and the typed-back confirmation
read it as a thousands separator or refuse it, never delete it ("1 5" is not 15)."""

from __future__ import annotations

from textual.widgets import Button, Input

from refund_tui.core.models import ProviderName
from refund_tui.tui.screens.confirm import ConfirmScreen
from tests.console import flat, screen_text, settle
from tests.test_tui_refund_flow import GHANA_MOBILE, IVORIAN_MOBILE, confirm_screen, open_form, type_into


async def test_the_form_refuses_whitespace_that_is_not_a_thousands_separator(sandbox, app):
    reference = sandbox.create_payment("vesicash", 5000, "GHS", GHANA_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, ProviderName.VESICASH, reference)
        await type_into(pilot, form.query_one("#reason", Input), "Overcharged")
        review = form.query_one("#review", Button)

        for typed in ("1 5", "12\t50", "10 00"):
            await type_into(pilot, form.query_one("#amount", Input), typed)
            assert f"{typed!r} is not a number" in flat(screen_text(app)), typed
            assert review.disabled is True

        await type_into(pilot, form.query_one("#amount", Input), "1 500")
        assert review.disabled is False
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.prepared.draft.amount.minor == 150000


async def test_the_confirmation_does_not_take_1_space_5_for_15(sandbox, session, app):
    reference = sandbox.create_payment("novasend", 5000, "XOF", IVORIAN_MOBILE)
    async with app.run_test(size=(80, 24)) as pilot:
        confirm = await confirm_screen(pilot, session, reference, "15")

        await pilot.press("1", "space", "5", "enter")
        await settle(pilot)

        assert app.screen is confirm
        assert "Type the amount (15) to confirm." in flat(screen_text(app))
    assert [r for r in sandbox.refunds() if r["payment_reference"] == reference] == []
