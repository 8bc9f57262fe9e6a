"""Helpers for driving the console in Pilot tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

#: The console's clock in tests: the board's "updated" indicator reads 14:02:11.
FROZEN = datetime(2025, 5, 14, 14, 2, 11, tzinfo=UTC)
#: Refresh interval for tests that wait on several ticks (the product floor is 2 s).
FAST_INTERVAL = 0.2


def screen_text(app) -> str:
    """What the terminal shows right now, as plain text (modal screens over their background)."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return "\n".join("".join(strip.text for strip in line) for line in update.strips)


def flat(text: str) -> str:
    """Screen text with wrapping and padding folded away, for phrase searches."""
    return " ".join(text.split())


async def settle(pilot) -> None:
    """Let workers finish and the screen catch up."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the console"
        await pilot.pause(0.05)
