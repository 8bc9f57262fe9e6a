"""Reconciling 1,000 payments against the simulator at 100 ms latency, against the ideal.

Makes PAYMENTS refunds with ``refund-tui batch`` (no latency), so the ledger touched that
many payments, plants a double refund, then adds LATENCY to every provider request and times
``refund-tui reconcile --json`` twice as a real process (start-up included): first while the
ledger still shows every refund in flight (reconciliation records each settlement), then
again with the ledger up to date. Ideal = PAYMENTS x LATENCY / concurrency (one record read per payment). Peak RSS
of the reconcile process.

    python benchmarks/reconcile.py [--payments 1000] [--latency-ms 100] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batch import print_against_ideal, simulator, timed, write_file


def main(payments: int, latency_ms: int, concurrency: int) -> None:
    with simulator() as (url, control), tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        (home / "config").mkdir(parents=True)
        (home / "config" / "config.toml").write_text(f"[tracking]\nconcurrency = {concurrency}\n")
        env = dict(os.environ, REFUND_TUI_HOME=str(home), REFUND_TUI_SANDBOX_URL=url)
        path = Path(folder) / "batch.csv"
        write_file(control, path, payments)
        made = subprocess.run([sys.executable, "-m", "refund_tui", "batch", str(path), "--yes", "--json",
                               "--concurrency", "16"], env=env, capture_output=True, text=True)  # fmt: skip
        if made.returncode != 0:
            raise SystemExit(f"the batch failed: {made.stderr[-500:]}")
        time.sleep(0.5)  # every refund settles
        ours = control.get("/refunds").json()[-1]["refund_reference"]
        control.post(f"/refunds/{ours}/duplicate", json={})
        control.post("/faults", json={"latency_ms": latency_ms})
        load = os.getloadavg()[0]
        first = timed(env, "reconcile", "--json")
        again = timed(env, "reconcile", "--json")
    ideal = payments * latency_ms / 1000 / concurrency
    report = json.loads(again.stdout)
    kinds = sorted({finding["kind"] for finding in report["findings"]})
    print(f"reconciling {payments} payments, simulator latency {latency_ms} ms, concurrency {concurrency}, "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print_against_ideal([
        (f"first (records {payments:,} settlements)", first.seconds, ideal),
        ("again (the ledger up to date)", again.seconds, ideal),
    ])
    print(f"  payments checked {report['payments_checked']}, findings {len(report['findings'])} {kinds}")
    print(f"  CPU of the reconcile process: first {first.cpu_seconds:.1f} s, again {again.cpu_seconds:.1f} s")
    print(f"  peak RSS of the reconcile process: {max(first.peak_mb, again.peak_mb):.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    main(**vars(parser.parse_args()))
