"""How long one tracking sweep of 1,000 in-flight refunds takes, against the ideal.

Runs the simulator in memory with settlement so slow that every refund stays in flight,
makes COUNT refunds through the real service (half Vesicash, half Novasend), then adds
LATENCY of simulator latency to every request and times ``RefundService.track(force=True)``.
Ideal = COUNT x LATENCY / concurrency. Also reports the most requests ever in flight at once.

    python benchmarks/polling.py [--count 1000] [--latency-ms 100] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from refund_tui.core.models import ProviderName
from refund_tui.core.provider import ProviderSettings
from refund_tui.core.secret import Secret
from refund_tui.core.service import RefundService
from refund_tui.ledgers.sqlite import SqliteLedger
from refund_tui.providers import make_provider
from refund_tui.sandbox.server import EmbeddedSandbox

PAYMENTS = {
    ProviderName.VESICASH: dict(provider="vesicash", amount=100, currency="GHS", phone="+233241234567"),
    ProviderName.NOVASEND: dict(provider="novasend", amount=1000, currency="XOF", phone="+2250701234567"),
}


class InFlightCounter:
    """Counts requests between sending and the answer's arrival, keeping the peak."""

    def __init__(self) -> None:
        self.now = self.peak = self.total = 0

    async def sent(self, request: httpx.Request) -> None:
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)

    async def answered(self, response: httpx.Response) -> None:
        self.now -= 1


def providers_for(url: str, counter: InFlightCounter) -> dict:
    published = httpx.get(f"{url}/_sandbox/").json()
    providers = {}
    for name in ProviderName:
        entry = dict(published[name.value])
        settings = ProviderSettings(base_url=entry.pop("base_url"), timeout_seconds=30)
        provider = make_provider(name, settings, {k: Secret(v) for k, v in entry.items()})
        hooks = provider._http._client.event_hooks  # benchmark-only instrumentation
        hooks["request"].append(counter.sent)
        hooks["response"].append(counter.answered)
        providers[name] = provider
    return providers


async def make_refunds(service: RefundService, control: httpx.Client, count: int) -> None:
    names = list(ProviderName)
    for index in range(count):
        name = names[index % 2]
        reference = control.post("/payments", json=PAYMENTS[name]).json()["reference"]
        view = await service.lookup(name, reference)
        country = None
        if service.provider(name).sends_phone:
            country = next(c for c in await service.countries(name) if c.iso_code == view.country)
        prepared = service.prepare(
            view, amount=str(PAYMENTS[name]["amount"] // 2), reason="Benchmark", country=country
        )
        await service.submit(prepared)


async def main(count: int, latency_ms: int, concurrency: int) -> None:
    counter = InFlightCounter()
    with tempfile.TemporaryDirectory() as home, EmbeddedSandbox(settle_seconds=100_000) as sandbox:
        control = httpx.Client(base_url=f"{sandbox.url}/_sandbox")
        ledger = SqliteLedger(Path(home) / "ledger.sqlite3")
        service = RefundService(
            ledger, providers_for(sandbox.url, counter), profile="bench",
            environment="sandbox", refunds_enabled=True, concurrency=concurrency,
        )
        started = time.perf_counter()
        await make_refunds(service, control, count)
        print(f"setup: {count} refunds submitted in {time.perf_counter() - started:.1f} s")
        control.post("/faults", json={"latency_ms": latency_ms})
        counter.peak = counter.total = 0

        started = time.perf_counter()
        await service.track(force=True)
        elapsed = time.perf_counter() - started

        in_flight = len(ledger.unresolved())
        ideal = count * latency_ms / 1000 / concurrency
        print(f"in flight after the sweep: {in_flight} (every one polled once: {counter.total} requests)")
        print(f"sweep of {count} refunds at {latency_ms} ms latency, concurrency {concurrency}:")
        print(f"  measured {elapsed:.2f} s, ideal {ideal:.2f} s, ratio {elapsed / ideal:.2f} (target <= 1.5)")
        print(f"  most requests in flight at once: {counter.peak} (limit {concurrency})")
        for provider in service.providers.values():
            await provider.aclose()
        ledger.close()
        control.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.count, arguments.latency_ms, arguments.concurrency))
