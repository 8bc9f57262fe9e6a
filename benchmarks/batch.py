"""A 1,000-row batch against the simulator at 100 ms latency, against the ideal.

Runs the simulator as its own process (``refund-tui sandbox``), creates ROWS payments (half
Vesicash, half Novasend) through its control API, writes a CSV of one row each, adds LATENCY
to every provider request, then times ``refund-tui batch FILE --dry-run --json`` and
``refund-tui batch FILE --yes`` as real processes (start-up included). Peak RSS of the batch
process.

Ideal, per the issue: ROWS x LATENCY / concurrency, the time of one request per row. A batch
makes two passes over its rows, one after the other, by design: the dry run always comes first
(one lookup per payment) and nothing is sent until every row is checked; then the sending (one
refund request per row). So each pass is set against the ideal: the dry run alone, and the
``--yes`` run's check and its sending (split where it prints the plan it is about to send);
and the whole ``--yes`` run against twice the ideal.

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
from dataclasses import dataclass
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


@dataclass
class Timing:
    seconds: float
    stdout: str
    peak_mb: float
    cpu_seconds: float
    #: Seconds from start until a line containing the marker was printed (None: no marker).
    marked: float | None = None


def timed(env: dict[str, str], *args: str, marker: str | None = None) -> Timing:
    """Run ``refund-tui ARGS``, reading its output as it is printed."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "refund_tui", *args], env=dict(env, PYTHONUNBUFFERED="1"),
            stdout=subprocess.PIPE, stderr=errors, text=True,
        )  # fmt: skip
        lines, marked = [], None
        for line in process.stdout:
            lines.append(line)
            if marker and marked is None and marker in line:
                marked = time.perf_counter() - started
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            errors.seek(0)
            raise SystemExit(f"refund-tui {' '.join(args)} failed: {errors.read()[-500:]!r}")
    return Timing(elapsed, "".join(lines), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, marked)


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
        common = ("batch", str(path), "--concurrency", str(concurrency))
        load = os.getloadavg()[0]
        floor = bare_lookups(env, path, concurrency)
        dry = timed(env, *common, "--dry-run", "--json")
        run = timed(env, *common, "--yes", marker="ready to send")
        executed = len(control.get("/refunds").json()) - seeded
    if run.marked is None:
        raise SystemExit(f"the run never printed its plan: {run.stdout[-500:]!r}")
    ideal = rows * latency_ms / 1000 / concurrency
    print(f"batch of {rows} rows, simulator latency {latency_ms} ms, concurrency {concurrency}, "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print_against_ideal([
        ("bare lookups (clients only)", floor, ideal),
        ("dry run (start-up included)", dry.seconds, ideal),
        ("run: its check (start-up incl.)", run.marked, ideal),
        ("run: its sending, 1 request a row", run.seconds - run.marked, ideal),
        ("run in all (check, then send)", run.seconds, 2 * ideal),
    ])
    print(f"  rows valid {json.loads(dry.stdout)['valid']}, executed by the simulator {executed}; "
          f"the run said: {run.stdout.strip().splitlines()[-1]}")  # fmt: skip
    print(f"  CPU of the batch process: dry run {dry.cpu_seconds:.1f} s, run {run.cpu_seconds:.1f} s "
          f"({run.cpu_seconds / rows * 1000:.1f} ms a row)")
    print(f"  peak RSS of a batch process: {max(dry.peak_mb, run.peak_mb):.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    main(**vars(parser.parse_args()))
