"""Webhook receiver figures, printed against their targets (not a test).

Run from the repository root: ``python benchmarks/webhooks.py`` (about a minute).

1. Throughput: ``refund-tui webhooks serve`` in its own process on loopback, a ledger of
   LOAD_REFUNDS pending Novasend refunds, and a client sending each refund's
   ``refund.processing`` then ``refund.completed`` (signed as Novasend signs, so every
   delivery goes through the compact-JSON fallback), CONCURRENCY refunds at a time over
   keep-alive connections from a hand-written client that costs little CPU. Every delivery is verified and written to the ledger (fsync'd);
   the figure is verified deliveries per second, and the ledger is checked afterwards.
2. Board latency: the console on a pseudo-terminal (80x24) showing the board of a profile
   whose provider cannot be reached (so only a webhook can change anything), a receiver in
   another process, and BOARD_NOTICES ``refund.completed`` notifications sent at random
   moments: time from the receiver's 200 to the board's completed count changing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.startup import Terminal, child_env  # noqa: E402
from refund_tui.core.ledger import NewAttempt, Operator  # noqa: E402
from refund_tui.core.models import ProviderName, RefundStatus  # noqa: E402
from refund_tui.core.money import Money  # noqa: E402
from refund_tui.core.provider import RefundRequest  # noqa: E402
from refund_tui.ledgers.sqlite import SqliteLedger  # noqa: E402
from refund_tui.tui.widgets.status import LOOKS  # noqa: E402

LOAD_REFUNDS = 2_000
CONCURRENCY = 16
BOARD_REFUNDS = 20
BOARD_NOTICES = 15
TARGETS = {"deliveries_per_second": 500, "board_seconds": 1.0}
SECRET = "bench_whsec_not_a_real_secret"
OPERATOR = Operator(name="bench", uid=1000, hostname="bench-host", ssh_client=None)
CONFIG = """
[profiles.bench-load]
environment = "sandbox"
[profiles.bench-load.novasend]
base_url = "http://127.0.0.1:9"

[profiles.bench-board]
environment = "sandbox"
[profiles.bench-board.novasend]
base_url = "http://127.0.0.1:9"
"""


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def fill(ledger_path: Path, count: int) -> list[tuple[str, str]]:
    """``count`` pending Novasend refunds with provider references: (reference, payment)."""
    refunds = []
    with SqliteLedger(ledger_path) as ledger:
        for number in range(count):
            payment = f"tr_bench_{number}"
            amount = Money(1500, "XOF")
            request = RefundRequest(
                provider=ProviderName.NOVASEND, payment_reference=payment, method="POST",
                path=f"/v1/payin/{payment}/refund", body="{}", idempotency_key=str(uuid.uuid4()),
                external_reference=f"rtui-bench-{number}", amount=amount,
            )  # fmt: skip
            attempt = ledger.record_attempt(
                NewAttempt(
                    profile=ledger_path.stem,
                    environment="sandbox",
                    provider=ProviderName.NOVASEND,
                    payment_reference=payment,
                    amount=amount,
                    phone="+2250755550101",
                    country_id=None,
                    reason="Duplicate charge",
                    webhook_url=None,
                    request=request,
                    operator=OPERATOR,
                ),  # fmt: skip
                limit=Money(10**9, "XOF"),
                known_references=(),
            )
            reference = f"rf_bench_{number}"
            ledger.add_event(attempt.attempt_id, RefundStatus.PENDING, "send", provider_reference=reference)
            refunds.append((reference, payment))
    return refunds


def notice(reference: str, payment: str, state: str) -> tuple[bytes, dict[str, str]]:
    """A Novasend notification as the simulator sends it: spaced JSON, compact signature."""
    payload = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": f"refund.{state}",
        "createdAt": "2026-11-23T10:00:00.000Z",
        "data": {
            "type": "refund", "reference": reference, "originalReference": payment,
            "amount": 1500, "currency": "XOF", "status": state, "reason": "Duplicate charge",
            "createdAt": "2026-11-23T10:00:00.000Z", "externalReference": None,
        },
    }  # fmt: skip
    compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    signature = hmac.new(SECRET.encode(), compact, hashlib.sha256).hexdigest()
    return json.dumps(payload).encode(), {"content-type": "application/json", "X-Signature-Value": signature}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """``refund-tui webhooks serve`` for ``profile`` in a child process."""

    def __init__(self, home: Path, profile: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks/novasend"
        env = child_env(home)
        env[f"REFUND_TUI_{profile.upper().replace('-', '_')}_NOVASEND_WEBHOOK_SECRET"] = SECRET
        self.process = subprocess.Popen(
            [sys.executable, "-m", "refund_tui", "webhooks", "serve", "--profile", profile,
             "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the receiver did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(15)


class Connection:
    """One keep-alive HTTP/1.1 connection, written by hand: a load generator must cost far
    less than the server it measures (httpx spends ~3 ms of CPU per request, more than the
    receiver does, and both share this machine's cores)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = httpx.URL(url)
        return cls(*await asyncio.open_connection(parts.host, parts.port))

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def send_all(url: str, refunds: list[tuple[str, str]]) -> tuple[float, list[float], dict]:
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    queue = list(refunds)
    path = httpx.URL(url).path

    async def worker(connection: Connection) -> None:
        while queue:
            reference, payment = queue.pop()
            for state in ("processing", "completed"):
                body, headers = notice(reference, payment, state)
                started = time.perf_counter()
                status, answer = await connection.post(path, body, headers)
                latencies.append(time.perf_counter() - started)
                outcome = json.loads(answer).get("outcome", f"HTTP {status}")
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

    connections = [await Connection.open(url) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(connection) for connection in connections))
        return time.perf_counter() - started, latencies, outcomes
    finally:
        for connection in connections:
            connection.close()


def throughput(home: Path) -> float:
    from refund_tui.config import paths

    ledger_path = paths().ledger_file("bench-load")
    refunds = fill(ledger_path, LOAD_REFUNDS)
    receiver = Receiver(home, "bench-load")
    try:
        elapsed, latencies, outcomes = asyncio.run(send_all(receiver.url, refunds))
    finally:
        receiver.stop()
    with SqliteLedger(ledger_path) as ledger:
        completed = ledger.counts()[RefundStatus.COMPLETED]
    rate = len(latencies) / elapsed
    print(f"1. Throughput: {len(latencies):,} signed Novasend deliveries, {CONCURRENCY} at a time")
    print(f"   outcomes {outcomes}; ledger: {completed:,} of {LOAD_REFUNDS:,} refunds completed")
    print(
        f"   {elapsed:.2f} s -> {rate:,.0f} verified deliveries/s   target >= "
        f"{TARGETS['deliveries_per_second']}  {verdict(rate >= TARGETS['deliveries_per_second'])}"
    )
    print(
        f"   per delivery: p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )
    return rate


def board_latency(home: Path) -> float:
    from refund_tui.config import paths

    refunds = fill(paths().ledger_file("bench-board"), BOARD_REFUNDS)
    receiver = Receiver(home, "bench-board")
    env = child_env(home)
    env.update(
        REFUND_TUI_BENCH_BOARD_NOVASEND_API_KEY="bench_not_a_key",
        REFUND_TUI_BENCH_BOARD_NOVASEND_API_CLIENT="bench_not_a_client",
    )
    terminal = Terminal([sys.executable, "-m", "refund_tui", "--profile", "bench-board"], env)
    marker = LOOKS[RefundStatus.COMPLETED].marker
    samples = []
    try:
        terminal.wait_for(b"READ-ONLY")
        terminal.press(b"\x1b")  # leave the reference field (esc), then open the board
        time.sleep(0.3)
        terminal.press(b"b")
        terminal.wait_for(f"{marker} 0 completed".encode())
        for done, (reference, payment) in enumerate(refunds[:BOARD_NOTICES], start=1):
            time.sleep(random.uniform(0.1, 0.6))
            body, headers = notice(reference, payment, "completed")
            answer = httpx.post(receiver.url, content=body, headers=headers, timeout=10)
            assert answer.json() == {"outcome": "applied"}, answer.text
            answered = time.perf_counter() - terminal.started
            shown = terminal.wait_for(f"{marker} {done} completed".encode(), timeout=10)
            samples.append(shown - answered)
    finally:
        terminal.quit()
        receiver.stop()
    worst = max(samples)
    print(f"2. Board: receiver's 200 -> completed count on the console's board ({len(samples)} notices)")
    print(
        f"   median {statistics.median(samples) * 1000:.0f} ms, max {worst * 1000:.0f} ms   "
        f"target < {TARGETS['board_seconds']:g} s  {verdict(worst < TARGETS['board_seconds'])}"
    )
    return worst


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="refund-tui-webhooks-") as directory:
        home = Path(directory)
        os.environ["REFUND_TUI_HOME"] = str(home)
        (home / "config").mkdir(parents=True)
        (home / "config" / "config.toml").write_text(CONFIG)
        throughput(home)
        board_latency(home)


if __name__ == "__main__":
    main()
