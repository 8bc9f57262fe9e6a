"""Ledger figures: intent-recording latency (fsync included) and board query times.

Run: ``python benchmarks/ledger.py`` (takes about a minute). Prints, does not assert.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from refund_tui.core.ledger import NewAttempt, Operator
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.provider import RefundRequest
from refund_tui.ledgers.sqlite import SqliteLedger

INSERTS = 500
BOARD_SIZES = (10_000, 100_000)
#: Who the benchmarks make every refund as (a solo ledger records this OS account).
OPERATOR = Operator(name="bench", uid=1000, hostname="bench-host", ssh_client=None)
#: Final statuses for bulk-loaded attempts, most refunds completing.
OUTCOMES = (
    [RefundStatus.COMPLETED] * 80
    + [RefundStatus.FAILED] * 10
    + [RefundStatus.PROCESSING] * 5
    + [RefundStatus.PENDING] * 3
    + [RefundStatus.UNKNOWN] * 2
)


def new_attempt(payment: str) -> NewAttempt:
    request = RefundRequest(
        provider=ProviderName.NOVASEND,
        payment_reference=payment,
        method="POST",
        path=f"/v1/payin/{payment}/refund",
        body='{"amount":1500,"reason":"Duplicate charge","externalReference":"x"}',
        idempotency_key=str(uuid.uuid4()),
        external_reference=f"rtui-{uuid.uuid4().hex[:20]}",
        amount=Money(1500, "XOF"),
    )
    return NewAttempt(
        profile="sandbox", environment="sandbox", provider=ProviderName.NOVASEND,
        payment_reference=payment, amount=Money(1500, "XOF"), phone="+2250755550101",
        country_id=None, reason="Duplicate charge", webhook_url=None, request=request,
        operator=OPERATOR,
    )  # fmt: skip


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def intent_latency(directory: Path) -> None:
    samples = []
    with SqliteLedger(directory / "intents.sqlite3") as ledger:
        for number in range(INSERTS):
            new = new_attempt(f"tr_{number}")  # one each: a refund without an answer holds its payment
            started = time.perf_counter()
            ledger.record_attempt(new, limit=Money(10**12, "XOF"), known_references=())
            samples.append((time.perf_counter() - started) * 1000)
    print(
        f"record_attempt x{INSERTS} (BEGIN IMMEDIATE + cap check + fsync): "
        f"p50 {percentile(samples, 0.5):.2f} ms, p99 {percentile(samples, 0.99):.2f} ms, "
        f"max {max(samples):.2f} ms"
    )


def bulk_load(path: Path, count: int, *, answered: bool = False) -> str:
    """Fill a ledger with ``count`` attempts and their events in one fast transaction; with
    ``answered``, none is left pending (a console's start-up recovery would look those up).

    Returns a provider reference from the middle of the ledger, for a lookup.
    """
    outcomes = [outcome for outcome in OUTCOMES if not (answered and outcome is RefundStatus.PENDING)]
    SqliteLedger(path).close()
    rng = random.Random(count)
    start = datetime.now(UTC) - timedelta(days=90)
    attempts, events = [], []
    for number in range(count):
        attempt_id = str(uuid.uuid4())
        created = (start + timedelta(seconds=number * 60)).isoformat(timespec="microseconds")
        provider = rng.choice(list(ProviderName)).value
        payment = f"tr_{number // 2}"
        attempts.append((
            attempt_id, created, "sandbox", "sandbox", provider, payment, 1500, "XOF",
            "+2250755550101", None, "Duplicate charge", None, str(uuid.uuid4()), f"ext-{number}",
            "POST", f"/v1/payin/{payment}/refund", '{"amount":1500}', "bench", 1000,
            "bench-host", None, 4242, "bench", None,
        ))  # fmt: skip
        events.append((attempt_id, created, "pending", "intent", None))
        outcome = rng.choice(outcomes)
        if outcome is not RefundStatus.PENDING:
            events.append((attempt_id, created, outcome.value, "poll", f"rf_{number}"))
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA synchronous = OFF")
    raw.execute("PRAGMA cache_size = -262144")  # 256 MiB: random uuid keys thrash a small cache
    raw.execute("BEGIN")
    raw.executemany(
        f"INSERT INTO attempts (attempt_id, created_at, profile, environment, provider, "
        f"payment_reference, amount_minor, currency, phone, country_id, reason, webhook_url, "
        f"idempotency_key, external_reference, request_method, request_path, request_body, "
        f"operator_name, operator_uid, hostname, ssh_client, pid, app_version, retry_of) "
        f"VALUES ({', '.join('?' * 24)})",
        attempts,
    )
    raw.executemany(
        "INSERT INTO events (attempt_id, at, status, source, provider_reference) "
        "VALUES (?, ?, ?, ?, ?)",
        events,
    )
    raw.execute("COMMIT")
    raw.close()
    return [event[4] for event in events[len(events) // 2 :] if event[4]][0]


def timed(label: str, query: Callable[[], object], repeat: int = 3) -> None:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = query()
        times.append((time.perf_counter() - started) * 1000)
    size = f"{len(result)} rows" if isinstance(result, list) else f"{len(result)} keys"
    print(f"  {label:<44} median {statistics.median(times):8.2f} ms  ({size})")


def board_queries(directory: Path, count: int) -> None:
    path = directory / f"board-{count}.sqlite3"
    started = time.perf_counter()
    reference = bulk_load(path, count)
    print(f"{count:,} attempts (bulk-loaded in {time.perf_counter() - started:.1f} s):")
    with SqliteLedger(path) as ledger:
        timed("attempts(limit=None)  (whole board)", ledger.attempts)
        timed("attempts(limit=500)   (board page)", lambda: ledger.attempts(limit=500))
        timed("counts()", ledger.counts)
        timed("unresolved()", ledger.unresolved)
        timed(
            "attempts(statuses=[failed], limit=500)",
            lambda: ledger.attempts(statuses=[RefundStatus.FAILED], limit=500),
        )
        timed(
            "attempts(provider, payment_reference)",
            lambda: ledger.attempts(provider=ProviderName.NOVASEND, payment_reference="tr_1234"),
        )
        timed("get(provider reference)", lambda: [ledger.get(reference)])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="refund-tui-bench-") as name:
        directory = Path(name)
        intent_latency(directory)
        for count in BOARD_SIZES:
            board_queries(directory, count)


if __name__ == "__main__":
    main()
