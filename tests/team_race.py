"""One racing operator for the team ledger tests: ``python -m tests.team_race PAYMENT TRIES``.

Opens the ``team`` profile of its REFUND_TUI_HOME and tries TRIES refunds of 1,000 XOF on
PAYMENT (Novasend), one after another; prints each attempt id it gets back, one a line, as
soon as it has it (a SIGKILL may cut it short at any moment).
"""

from __future__ import annotations

import asyncio
import sys

from refund_tui.core.ledger import CapExceeded, LedgerError
from refund_tui.core.models import ProviderError, ProviderName
from refund_tui.core.service import OutcomeUnknown, RefundNotAllowed
from refund_tui.core.validation import RefundInvalid
from refund_tui.session import Session


async def race(payment: str, tries: int) -> None:
    session = Session.open("team")
    session.service.retry_delays = ()
    try:
        for _ in range(tries):
            try:
                view = await session.service.lookup(ProviderName.NOVASEND, payment)
                prepared = session.service.prepare(view, amount="1000", reason="Duplicate charge")
                attempt = await session.service.submit(prepared)
            except OutcomeUnknown as unknown:
                attempt = unknown.attempt
            except (CapExceeded, RefundNotAllowed, RefundInvalid, ProviderError, LedgerError):
                continue
            print(attempt.attempt_id, flush=True)
    finally:
        await session.aclose()


if __name__ == "__main__":
    asyncio.run(race(sys.argv[1], int(sys.argv[2])))
