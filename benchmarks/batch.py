"""A 1,000-row batch against the simulator at 100 ms latency, against the ideal.

Runs the simulator as its own process (``refund-tui sandbox``), creates ROWS payments (half
Vesicash, half Novasend) through its control API, writes a CSV of one row each, adds LATENCY
to every provider request, then times ``refund-tui batch FILE --dry-run`` and
``refund-tui batch FILE --yes`` as real processes (start-up included). Ideal, per the issue:
ROWS x LATENCY / concurrency; a run makes two requests per row (the lookup of the dry run it
always does, then the refund), so its own floor is twice that. Peak RSS of the batch process.

Also measured, to tell refund-tui's own cost from the machine's: the CPU seconds of each
batch process, and a floor: the same lookups made bare (the provider clients only, no
ledger, no checks) at the same concurrency against the same simulator. On a machine whose
cores are busy with other work, the simulator's own CPU makes that floor exceed the ideal.

    python benchmarks/batch.py [--rows 1000] [--latency-ms 100] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

PAYMENTS = (
    dict(provider="vesicash", amount=100, currency="GHS", phone="+233241234567"),
    dict(provider="novasend", amount=1000, currency="XOF", phone="+2250701234567"),
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def simulator() -> Iterator[tuple[str, httpx.Client]]:
    """A simulator process (settlement unit 0.05 s): its URL and a client of its control API."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "refund_tui", "sandbox", "--port", str(port), "--settle-seconds", "0.05"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/_sandbox/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the simulator did not start") from None
                time.sleep(0.1)
        with httpx.Client(base_url=f"{url}/_sandbox") as control:
            yield url, control
    finally:
        process.terminate()
        process.wait()


def write_file(control: httpx.Client, path: Path, rows: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["provider", "payment", "amount", "reason"])
        for index in range(rows):
            payment = PAYMENTS[index % 2]
            reference = control.post("/payments", json=payment).json()["reference"]
            writer.writerow([payment["provider"], reference, payment["amount"] // 2, f"Benchmark {index}"])


def timed(env: dict[str, str], *args: str) -> tuple[float, dict, float, float]:
    """Run ``refund-tui ARGS``: (wall seconds, its JSON, its peak RSS in MB, its CPU seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "refund_tui", *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdout, stderr = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"refund-tui {' '.join(args)} exited {process.returncode}: {stderr[-500:]}")
    return elapsed, json.loads(stdout), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def bare_lookups(env: dict[str, str], path: Path, concurrency: int) -> float:
    """Seconds to look up every row's payment with the provider clients alone."""
    from refund_tui.core.models import ProviderName
    from refund_tui.session import Session

    os.environ.update(env)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [(ProviderName(line["provider"]), line["payment"]) for line in csv.DictReader(handle)]

    async def run() -> float:
        session = Session.open("sandbox")
        gate = asyncio.Semaphore(concurrency)

        async def lookup(provider: ProviderName, reference: str) -> None:
            async with gate:
                await session.service.provider(provider).get_payment(reference)

        started = time.perf_counter()
        await asyncio.gather(*(lookup(*row) for row in rows))
        elapsed = time.perf_counter() - started
        await session.aclose()
        return elapsed

    return asyncio.run(run())


def print_against_ideal(rows: list[tuple[str, float, float]]) -> None:
    """(label, measured seconds, ideal seconds) side by side with their ratio."""
    print(f"  {'':<34}{'measured':>10}{'ideal':>10}{'ratio':>8}")
    for label, seconds, ideal in rows:
        ratio = f"{seconds / ideal:>8.2f}" if ideal else f"{'-':>8}"
        print(f"  {label:<34}{seconds:>9.2f}s{ideal:>9.2f}s{ratio}")


def main(rows: int, latency_ms: int, concurrency: int) -> None:
    with simulator() as (url, control), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.csv"
        write_file(control, path, rows)
        control.post("/faults", json={"latency_ms": latency_ms})
        seeded = len(control.get("/refunds").json())
        env = dict(os.environ, REFUND_TUI_HOME=str(Path(folder) / "home"), REFUND_TUI_SANDBOX_URL=url)
        common = ("batch", str(path), "--json", "--concurrency", str(concurrency))
        load = os.getloadavg()[0]
        floor = bare_lookups(env, path, concurrency)
        dry_seconds, dry, _, dry_cpu = timed(env, *common, "--dry-run")
        run_seconds, run, peak_mb, run_cpu = timed(env, *common, "--yes")
        executed = len(control.get("/refunds").json()) - seeded
    ideal = rows * latency_ms / 1000 / concurrency
    print(f"batch of {rows} rows, simulator latency {latency_ms} ms, concurrency {concurrency}, "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print_against_ideal([
        ("bare lookups (clients only)", floor, ideal),
        ("dry run (one lookup per row)", dry_seconds, ideal),
        ("run (lookup + refund per row)", run_seconds, 2 * ideal),
        ("run, against rows x latency / c", run_seconds, ideal),
    ])
    print(f"  rows valid {dry['valid']}, sent {run['sent']}, executed by the simulator {executed}")
    print(f"  CPU of the batch process: dry run {dry_cpu:.1f} s, run {run_cpu:.1f} s "
          f"({run_cpu / rows * 1000:.1f} ms a row)")
    print(f"  peak RSS of a batch process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    main(**vars(parser.parse_args()))
