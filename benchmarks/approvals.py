"""Approval round trip on the team ledger: an approver approves a refund awaiting approval,
it is sent to the provider, and the requester's board shows it sent.

Measured from the call to ``RefundService.approve`` until the requester's change watch has
fired and its board read (``read_board``, as the console does it) shows the refund with its
provider reference. Side by side: the same trip for a refund under the threshold (``submit``
by one operator, seen on the other's board), so the figure's cost of the approval is plain.
The console looks at its watch every ``WATCH_INTERVAL`` (0.5 s) on top of this.

Run: ``python benchmarks/approvals.py [--rounds 25]``. Uses the server at
``REFUND_TUI_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/test) in a database
of its own, dropped at the end, and the embedded simulator. Prints, does not assert.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refund_tui.core.approvals import ApprovalRules  # noqa: E402
from refund_tui.core.models import ProviderName, RefundStatus  # noqa: E402
from refund_tui.core.money import Money  # noqa: E402
from refund_tui.core.provider import ProviderSettings  # noqa: E402
from refund_tui.core.secret import Secret  # noqa: E402
from refund_tui.core.service import RefundService  # noqa: E402
from refund_tui.ledgers.postgres import PostgresLedger, set_rules, setup  # noqa: E402
from refund_tui.ledgers.postgres_schema import APPROVER, OPERATOR  # noqa: E402
from refund_tui.providers import make_provider  # noqa: E402
from refund_tui.sandbox.server import EmbeddedSandbox  # noqa: E402
from refund_tui.tui.screens.board import BoardQuery, read_board  # noqa: E402
from tests.postgres import DEFAULT_URL, URL_VARIABLE, login_role, session_database  # noqa: E402

PAYMENT = dict(provider="novasend", amount=20000, currency="XOF", phone="+2250701234567")
RULES = ApprovalRules(above={"XOF": Money(5000, "XOF")})


def providers(url: str) -> dict:
    published = httpx.get(f"{url}/_sandbox/").json()
    made = {}
    for name in ProviderName:
        entry = dict(published[name.value])
        settings = ProviderSettings(base_url=entry.pop("base_url"), timeout_seconds=30)
        made[name] = make_provider(name, settings, {k: Secret(v) for k, v in entry.items()})
    return made


def service(url: str, sandbox_url: str) -> RefundService:
    return RefundService(PostgresLedger(url, pool_size=2), providers(sandbox_url), profile="bench",
                         environment="sandbox", refunds_enabled=True, retry_delays=())  # fmt: skip


class RequesterBoard:
    """The requester's console, reduced to its change watch and board read, in a thread."""

    def __init__(self, ledger: PostgresLedger) -> None:
        self.ledger = ledger
        self.watch = ledger.change_watch()

    def until_sent(self, payment_reference: str, seen: list[float]) -> threading.Thread:
        """Look (as the console does, on each change) until the payment's refund shows sent."""

        def look() -> None:
            while True:
                if self.watch.changed():
                    data = read_board(self.ledger, BoardQuery(text=payment_reference), datetime.now(UTC), 10)
                    if any(a.provider_reference and a.status is not RefundStatus.AWAITING_APPROVAL
                           for a in data.attempts):  # fmt: skip
                        seen.append(time.perf_counter())
                        return
                time.sleep(0.001)

        thread = threading.Thread(target=look, daemon=True)
        thread.start()
        return thread


async def prepared(svc: RefundService, control: httpx.Client, amount: str):
    reference = control.post("/payments", json=PAYMENT).json()["reference"]
    view = await svc.lookup(ProviderName.NOVASEND, reference)
    return svc.prepare(view, amount=amount, reason="Benchmark")


async def trip(board: RequesterBoard, act: Callable[[], Awaitable[object]], payment_reference: str) -> float:
    """Milliseconds from ``act()`` starting until the requester's board shows the refund sent."""
    seen: list[float] = []
    board.watch.changed()  # drop what came before
    started = time.perf_counter()
    looking = board.until_sent(payment_reference, seen)
    await act()
    await asyncio.to_thread(looking.join, 30)
    return (seen[0] - started) * 1000


async def run(rounds: int, database_url: str, sandbox_url: str) -> None:
    setup(database_url)
    set_rules(database_url, RULES)
    operator = service(login_role(database_url, "bench_op", OPERATOR), sandbox_url)
    approver = service(login_role(database_url, "bench_ap", APPROVER), sandbox_url)
    board = RequesterBoard(operator.ledger)
    control = httpx.Client(base_url=f"{sandbox_url}/_sandbox")
    approvals, plain = [], []
    for _ in range(rounds):
        waiting = await operator.submit(await prepared(operator, control, "6000"))
        assert waiting.status is RefundStatus.AWAITING_APPROVAL
        approvals.append(await trip(board, lambda: approver.approve(waiting.attempt_id), waiting.payment_reference))
        small = await prepared(approver, control, "1000")
        plain.append(await trip(board, lambda: approver.submit(small), small.view.payment.reference))
    for label, samples in (("approve -> sent -> requester's board", approvals),
                           ("baseline: submit (no approval) -> other's board", plain)):  # fmt: skip
        print(f"{label:<48} median {statistics.median(samples):7.1f} ms  max {max(samples):7.1f} ms  (n={len(samples)})")
    board.watch.close()
    control.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    rounds = parser.parse_args().rounds
    admin = os.environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL
    with session_database(admin) as database_url, EmbeddedSandbox() as sandbox:
        asyncio.run(run(rounds, database_url, sandbox.url))


if __name__ == "__main__":
    main()
