"""Write the README screenshots: the snapshot tests' tour, at 100x30, against the simulator.

    python screenshots/make_screenshots.py

Each screen is walked from a fresh simulator world and a fresh ledger under
``refund_tui.tui.tour.frozen_world``, so the SVGs only change when the console does.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from refund_tui.sandbox.server import EmbeddedSandbox
from refund_tui.tui import tour

SIZE = (100, 30)
OUT = Path(__file__).resolve().parent
SHOTS = {
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
}


async def shoot(name: str, step: tour.Step, simulator: str) -> Path:
    """Walk ``step`` in a fresh home against a freshly seeded world; save ``<name>.svg``."""
    with tempfile.TemporaryDirectory() as home, tour.frozen_world(Path(home), simulator) as clock:
        app = tour.console(clock)
        async with app.run_test(size=SIZE) as pilot:
            await step(pilot)
            return Path(app.save_screenshot(f"{name}.svg", str(OUT)))


async def main() -> None:
    with EmbeddedSandbox() as simulator:
        for name, step in SHOTS.items():
            print(await shoot(name, step, simulator.url))


if __name__ == "__main__":
    asyncio.run(main())
