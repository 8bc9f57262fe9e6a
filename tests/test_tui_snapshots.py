"""SVG snapshots of every console screen at 80x24 and 120x40, walked by ``refund_tui.tui.tour``.

After an intended UI change: ``pytest tests/test_tui_snapshots.py --snapshot-update``, then
look at every changed SVG in tests/__snapshots__/test_tui_snapshots/ before committing it.
"""

from __future__ import annotations

import pytest

from refund_tui.sandbox import demo
from refund_tui.tui import tour

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
SCREENS = {
    "first-screen": tour.show_first_screen,
    "lookup": tour.show_lookup,
    "refund-form-error": tour.show_refund_form_error,
    "confirm": tour.show_confirm,
    "board": tour.show_board,
    "details-failed": tour.show_failed_details,
    "triage": tour.show_triage,
    "batch": tour.show_batch,
    "reconcile": tour.show_reconcile,
    "approvals": tour.show_approvals,
    "help": tour.show_help,
    "credentials": tour.show_credentials,
}
TOO_SMALL = {"79x24": (79, 24), "100x20": (100, 20)}
DEMO_SECRETS = (
    demo.VESICASH_PUBLIC_KEY,
    demo.VESICASH_SECRET_KEY,
    demo.NOVASEND_API_KEY,
    demo.NOVASEND_API_CLIENT,
    "_DEMO_",
)


@pytest.fixture
def clock(sandbox_session, tmp_path):
    """The frozen world on the shared simulator (re-seeded under the frozen clock)."""
    with tour.frozen_world(tmp_path, sandbox_session.url) as clock:
        yield clock


def without_secrets(step: tour.Step) -> tour.Step:
    """``step``, then a check that no demo credential is on the screen it leaves."""

    async def run(pilot) -> None:
        await step(pilot)
        svg = pilot.app.export_screenshot()
        assert [secret for secret in DEMO_SECRETS if secret in svg] == []

    return run


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("step", SCREENS.values(), ids=SCREENS.keys())
def test_screen(step, size, clock, snap_compare):
    app = tour.console(clock)
    assert snap_compare(app, terminal_size=size, run_before=without_secrets(step))


@pytest.mark.parametrize("size", TOO_SMALL.values(), ids=TOO_SMALL.keys())
def test_too_small(size, clock, snap_compare):
    assert snap_compare(tour.console(clock), terminal_size=size, run_before=tour.show_too_small)
