"""No focus traps in the refund form: tab follows the screen, a quick pick moves on, and keys
typed into a field never reach the console's single-letter keys. Pilot at 80x24."""

from __future__ import annotations

from textual.widgets import Input, Select

from refund_tui.core.models import ProviderName
from refund_tui.tui.screens.confirm import ConfirmScreen
from tests.test_tui_refund_flow import GHANA_MOBILE, open_form, type_into
from tests.console import wait_for

#: What an operator may type into the wrong field: a URL, then keys that are console commands.
TYPED = [*"http://example.com/hook", "b", "k", "l", "question_mark"]


def focusable_ids(screen) -> list[str]:
    return [widget.id for widget in screen.focus_chain]


async def vesicash_form(pilot, sandbox):
    reference = sandbox.create_payment("vesicash", 250, "GHS", GHANA_MOBILE)
    form = await open_form(pilot, ProviderName.VESICASH, reference)
    await wait_for(pilot, lambda: form.countries)
    return form


async def test_tab_order_follows_the_screen_top_to_bottom(sandbox, app):
    async with app.run_test(size=(80, 24)) as pilot:
        form = await vesicash_form(pilot, sandbox)
        order = focusable_ids(form)
        on_screen = sorted(form.focus_chain, key=lambda w: (w.region.y, w.region.x))
        assert order == [widget.id for widget in on_screen]
        assert order == ["amount", "phone", "country", "reason", "reason-pick", "webhook_url"]

        visited = [app.focused.id]
        for _ in order[1:]:
            await pilot.press("tab")
            visited.append(app.focused.id)
        assert visited == order


async def test_a_quick_pick_fills_the_reason_and_moves_on_to_the_next_field(sandbox, app):
    async with app.run_test(size=(80, 24)) as pilot:
        form = await vesicash_form(pilot, sandbox)
        form.query_one("#reason-pick", Select).focus()
        await pilot.press("enter", "down", "enter")
        await wait_for(pilot, lambda: form.query_one("#reason", Input).value != "")
        await pilot.pause()
        assert app.focused is form.query_one("#webhook_url", Input)


async def test_keys_typed_into_any_field_never_leave_the_form(sandbox, app):
    async with app.run_test(size=(80, 24)) as pilot:
        form = await vesicash_form(pilot, sandbox)
        for field_id in focusable_ids(form):
            field = form.query_one(f"#{field_id}")
            field.focus()
            await pilot.pause()
            await pilot.press(*TYPED)
            await pilot.pause()
            assert app.screen is form, f"typing into #{field_id} left the form for {app.screen}"
            assert app.current_mode == "lookup"
            if isinstance(field, Select) and field.expanded:
                await pilot.press("escape")  # close its list (type-to-search took the keys)
                await pilot.pause()
        assert form.query_one("#webhook_url", Input).value.startswith("http://example.com/hook")


async def test_keys_typed_into_the_confirmation_field_stay_there(sandbox, app):
    async with app.run_test(size=(80, 24)) as pilot:
        form = await vesicash_form(pilot, sandbox)
        await type_into(pilot, form.query_one("#reason", Input), "Duplicate charge")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        confirm = app.screen
        await pilot.press(*TYPED)
        await pilot.pause()
        assert app.screen is confirm
        assert confirm.query_one("#typed", Input).value.endswith("bkl?")
