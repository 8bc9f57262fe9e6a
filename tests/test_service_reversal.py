"""A reversal of a completed refund shows within one tracking interval while the refund is
younger than a day; older completed refunds are re-read only every COMPLETED_POLL_DELAY."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from refund_tui.core.models import RefundStatus
from refund_tui.core.service import FRESH_COMPLETED
from tests.test_tui_board import make_refund

REVERSED_LATER = "9905"  # completes, then the simulator reverses it


async def completed_then_reversed_at_the_provider(sandbox, service):
    """A refund tracked to completed; the provider has reversed it since."""
    attempt = await make_refund(sandbox, service, ending=REVERSED_LATER)
    sandbox.advance(sandbox.settle_seconds * 4)
    await service.track(force=True)
    assert service.ledger.get(attempt.attempt_id).status is RefundStatus.COMPLETED
    sandbox.advance(60)
    return attempt


async def test_a_young_refunds_reversal_shows_at_the_next_tracking_tick(sandbox, session):
    attempt = await completed_then_reversed_at_the_provider(sandbox, session.service)

    await session.service.track()  # the console's next tick, not forced

    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.REVERSED


async def test_a_refund_older_than_a_day_is_re_read_less_often(sandbox, session):
    later = datetime.now(UTC) + FRESH_COMPLETED + timedelta(hours=1)
    session.service.clock = lambda: later
    attempt = await completed_then_reversed_at_the_provider(sandbox, session.service)

    await session.service.track()

    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.COMPLETED
