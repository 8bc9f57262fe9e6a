"""``ledger verify`` over 100,000 events (target: under 2 s), both adapters, beside a baseline
measured in the same run: reading the very same rows (links and hashed columns, as stored)
in one snapshot, without rendering or hashing anything.

Also times chaining the rows a ledger already had (what the migration does on upgrade), and
on PostgreSQL loading the rows through the chain trigger.

Run: ``python benchmarks/ledger_verify.py`` (about two minutes). Uses the server at
``REFUND_TUI_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/test) in a
database of its own, dropped at the end. Prints, does not assert.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ledger import bulk_load  # noqa: E402
from benchmarks.ledger_postgres import pg_bulk_load  # noqa: E402
from refund_tui.ledgers.chain import CHAINED  # noqa: E402
from refund_tui.ledgers.postgres import PostgresLedger, setup  # noqa: E402
from refund_tui.ledgers.sqlite import SqliteLedger  # noqa: E402
from refund_tui.ledgers.sqlite_schema import _chain_existing_rows  # noqa: E402
from tests.postgres import DEFAULT_URL, URL_VARIABLE, session_database  # noqa: E402

#: Attempts loaded: about two events each, so about 100,000 events.
ATTEMPTS = 50_000
REPEAT = 3


def median_seconds(work: Callable[[], object]) -> tuple[float, float, object]:
    """Median wall-clock and CPU seconds of this process (the CPU figure is what a loaded
    machine's wall clock hides: SQLite runs in-process; PostgreSQL's own work is not in it)."""
    times, cpu, result = [], [], None
    for _ in range(REPEAT):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = work()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(times), statistics.median(cpu), result


def measure(kind: str, ledger) -> None:
    def read_only() -> int:
        """The baseline: every chained row's link and hashed columns, as stored, nothing more."""
        return ledger._snapshot(lambda conn: sum(
            len(conn.execute(f"SELECT chain_seq, prev_hash, row_hash, {', '.join(CHAINED[table].columns)} "
                             f"FROM {table}").fetchall())
            for table in ledger._chained
        ))  # fmt: skip

    [(events,)] = ledger.query("SELECT count(*) FROM events")
    baseline, baseline_cpu, rows = median_seconds(read_only)
    verify, verify_cpu, verdict = median_seconds(ledger.verify_chain)
    state = "intact" if verdict.broken is None else f"BROKEN: {verdict.broken.message}"
    print(f"  {kind:<9} {events:,} events, {rows:,} chained rows: read only {baseline:5.2f} s "
          f"(cpu {baseline_cpu:4.2f})   verify {verify:5.2f} s (cpu {verify_cpu:4.2f})  "
          f"({verdict.count:,} links {state})")  # fmt: skip


def main() -> None:
    admin = os.environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL
    with tempfile.TemporaryDirectory(prefix="refund-tui-bench-") as name, session_database(admin) as url:
        path = Path(name) / "verify.sqlite3"
        bulk_load(path, ATTEMPTS)
        started = time.perf_counter()
        with sqlite3.connect(path, isolation_level=None) as raw:
            raw.execute("BEGIN IMMEDIATE")
            _chain_existing_rows(raw)
            raw.execute("COMMIT")
        chained_in = time.perf_counter() - started
        setup(url)
        started = time.perf_counter()
        pg_bulk_load(url, ATTEMPTS)
        loaded_in = time.perf_counter() - started
        print(f"SQLite: rows already there chained (the upgrade's migration) in {chained_in:.1f} s; "
              f"PostgreSQL: loaded through the chain trigger in {loaded_in:.1f} s")  # fmt: skip
        print(f"ledger verify, median of {REPEAT}, beside reading the same rows as stored "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")  # fmt: skip
        with SqliteLedger(path) as ledger:
            measure("sqlite", ledger)
        with PostgresLedger(url) as ledger:
            measure("postgres", ledger)


if __name__ == "__main__":
    main()
