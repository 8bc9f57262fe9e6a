"""Reconciliation in the console: findings listed with both sides, acknowledged with a note."""

from __future__ import annotations

from textual.widgets import DataTable

from refund_tui.core.models import ProviderName
from refund_tui.tui.screens.note import NoteScreen
from refund_tui.tui.screens.reconcile import ReconcileScreen
from tests.console import flat, wait_for
from tests.test_reconcile import refunded


def summary(app) -> str:
    found = app.screen.query("#reconcile-summary")
    return flat(str(found.first().content)) if found else ""


async def test_a_double_refund_is_listed_with_both_sides_and_acknowledged_with_a_note(sandbox, session, app):
    attempt, reference = await refunded(sandbox, session, ProviderName.VESICASH)
    second = sandbox.duplicate_refund(attempt.provider_reference)["refund_reference"]
    async with app.run_test(size=(100, 30)) as pilot:
        await app.run_action("show_reconcile")
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen) and " checked: " in summary(app), timeout=10)

        assert summary(app).startswith("1 payment checked: 1 finding.")
        table = app.screen.query_one(DataTable)
        assert table.get_cell_at((0, 0)).plain == "double_refund"
        assert table.get_cell_at((0, 3)).endswith(" 120.50 GHS")  # the second execution
        assert f"provider: {second} 120.50 GHS" in flat(str(app.screen.query_one("#reconcile-finding").content))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen))
        await pilot.press(*"Customer returned it", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen) and "(1 acknowledged)" in summary(app))

    [ack] = session.ledger.acknowledgements().values()
    assert ack.note == "Customer returned it"
