"""Team ledger figures, side by side with the SQLite ledger in the same run.

- intent record (cap check + insert + commit) p50/p99 (target on local PostgreSQL: p99 < 20 ms);
- 4 processes racing to record (and answer) the 600 refunds one payment allows: throughput,
  and no over-refund;
- the board's reads with 100,000 attempts: before its first paint (FIRST_PAINT_ROWS rows, the
  counts, the retried ids; target for the paint < 0.5 s) and in full (ROW_LIMIT rows);
- a change on one connection seen by another's change watch, and on another console's open
  board (the real console, headless: watch, board re-read, repaint; target median < 300 ms,
  max < 1 s).

Run: ``python benchmarks/ledger_postgres.py`` (a few minutes; ``uptime`` first: a loaded
machine inflates every figure). Uses the server at
``REFUND_TUI_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/test) in a
database of its own, dropped at the end. Prints, does not assert.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ledger import bulk_load, new_attempt, percentile  # noqa: E402
from benchmarks.startup import CONSOLE, Terminal, child_env, open_board  # noqa: E402
from refund_tui.core.credentials import FIELDS, env_variable  # noqa: E402
from refund_tui.core.ledger import CapExceeded, LedgerError, RefundInFlight  # noqa: E402
from refund_tui.core.models import ProviderName, RefundStatus  # noqa: E402
from refund_tui.core.money import Money  # noqa: E402
from refund_tui.ledgers.postgres import PostgresLedger, setup  # noqa: E402
from refund_tui.ledgers.sqlite import SqliteLedger  # noqa: E402
from refund_tui.sandbox.server import EmbeddedSandbox  # noqa: E402
from refund_tui.tui.screens.board import FIRST_PAINT_ROWS, ROW_LIMIT, BoardQuery, read_board  # noqa: E402
from tests.postgres import DEFAULT_URL, URL_VARIABLE, session_database  # noqa: E402

INTENTS = 500
WORKERS = 4
#: The racing refunds (15.00 XOF each) may total at most this many.
ALLOWED = 600
BOARD_SIZE = 100_000
CHANGES = 50
PAINT_RUNS = int(os.environ.get("PAINT_RUNS", 3))
#: The race stops there, recorded or not (SQLite's writers can starve on a loaded machine).
RACE_SECONDS = 120


def open_kind(kind: str, where: str):
    return SqliteLedger(Path(where)) if kind == "sqlite" else PostgresLedger(where, pool_size=1)


def intent_latency(kind: str, where: str) -> str:
    samples = []
    with open_kind(kind, where) as ledger:
        for number in range(INTENTS):
            new = new_attempt(f"lat_{number}")  # one each: a refund without an answer holds its payment
            started = time.perf_counter()
            ledger.record_attempt(new, limit=Money(10**12, "XOF"), known_references=())
            samples.append((time.perf_counter() - started) * 1000)
    return f"p50 {percentile(samples, 0.5):6.2f} ms  p99 {percentile(samples, 0.99):6.2f} ms"


def _racer(kind: str, where: str, barrier, results) -> None:
    """Record refunds of one payment, each answered at once, until the cap refuses; a refusal
    because another process's refund has no answer yet is tried again."""
    with open_kind(kind, where) as ledger:
        barrier.wait()
        recorded = tries = failed = 0
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline:
            tries += 1
            try:
                attempt = ledger.record_attempt(new_attempt("race_1"), limit=Money(1500 * ALLOWED, "XOF"),
                                                known_references=())  # fmt: skip
                ledger.add_event(attempt.attempt_id, RefundStatus.PROCESSING, "provider",
                                 provider_reference=attempt.attempt_id)  # fmt: skip
            except RefundInFlight:
                continue
            except CapExceeded:
                break
            except LedgerError:  # busy (SQLite's 5 s wait) or cut off: the operator would retry
                failed += 1
                continue
            recorded += 1
        results.put((recorded, tries, failed))


def race(kind: str, where: str) -> str:
    fork = multiprocessing.get_context("fork")
    barrier, results = fork.Barrier(WORKERS + 1), fork.Queue()
    workers = [fork.Process(target=_racer, args=(kind, where, barrier, results)) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    recorded, tries, failed = (sum(column) for column in zip(*(results.get() for _ in workers), strict=True))
    with open_kind(kind, where) as ledger:
        total = sum(a.amount.minor for a in ledger.attempts(payment_reference="race_1"))
    verdict = "OVER-REFUND" if total > 1500 * ALLOWED else "no over-refund"
    if recorded < ALLOWED and elapsed >= RACE_SECONDS:
        verdict += f", stopped after {RACE_SECONDS} s"
    return (f"{recorded / elapsed:6.0f} intents/s ({tries} tries, {failed} refused as busy), "
            f"{recorded} recorded of {ALLOWED} allowed: {verdict}")  # fmt: skip


def pg_bulk_load(url: str, count: int) -> None:
    """``count`` attempts with their events, the way bulk_load fills SQLite, in SQL."""
    with psycopg.connect(url, options="-c search_path=refund_tui") as conn:
        conn.execute(
            """INSERT INTO attempts (attempt_id, created_at, profile, environment, provider,
            payment_reference, amount_minor, currency, phone, reason, idempotency_key,
            external_reference, request_method, request_path, request_body, operator_name,
            operator_uid, hostname, pid, app_version)
            SELECT gen_random_uuid()::text, now() - interval '90 days' + n * interval '1 minute',
                'sandbox', 'sandbox', CASE WHEN mod(n, 2) = 0 THEN 'novasend' ELSE 'vesicash' END,
                'tr_' || (n / 2), 1500, 'XOF', '+2250755550101', 'Duplicate charge',
                gen_random_uuid()::text, 'ext-' || n, 'POST', '/v1/payin/x/refund',
                '{"amount":1500}', 'bench', 1000, 'bench-host', 4242, 'bench'
            FROM generate_series(1, %s) AS n""",
            (count,),
        )
        conn.execute(
            """INSERT INTO events (attempt_id, at, status, source)
            SELECT attempt_id, created_at, 'pending', 'intent' FROM attempts"""
        )
        conn.execute(
            """INSERT INTO events (attempt_id, at, status, source, provider_reference)
            SELECT attempt_id, created_at,
                (ARRAY['completed','completed','completed','completed','completed','completed',
                       'completed','completed','failed','processing'])[1 + mod(seq, 10)],
                'poll', 'rf_' || seq
            FROM attempts"""
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")  # as autovacuum would soon: plans for 100,000 rows, not none


def first_board_read(kind: str, where: str) -> str:
    """What the board reads before its first paint (``read_board``, FIRST_PAINT_ROWS rows with
    the counts and retried ids), then its full read (ROW_LIMIT rows); a fresh ledger each."""
    figures = []
    for limit in (FIRST_PAINT_ROWS, ROW_LIMIT):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            with open_kind(kind, where) as ledger:
                read_board(ledger, BoardQuery(), datetime.now(UTC), limit=limit)
            times.append((time.perf_counter() - started) * 1000)
        figures.append(f"{limit} rows {statistics.median(times):7.1f} ms")
    return "median: open + " + ", ".join(figures)


def change_latency(kind: str, where: str) -> str:
    with open_kind(kind, where) as writer, open_kind(kind, where) as reader:
        watch = reader.change_watch()
        samples = []
        try:
            for number in range(CHANGES):
                started = time.perf_counter()
                writer.record_attempt(new_attempt(f"watch_{number}"), limit=Money(10**9, "XOF"),
                                      known_references=())  # fmt: skip
                while not watch.changed():
                    time.sleep(0.001)
                samples.append((time.perf_counter() - started) * 1000)
        finally:
            watch.close()
    return f"median {statistics.median(samples):6.2f} ms  max {max(samples):6.2f} ms"


def profile_home(home: Path, where: str, simulator: str) -> dict[str, str]:
    """Write a console home in ``home`` whose default profile ("team") keeps its ledger at
    ``where`` and talks to the simulator's providers, its tracking idle (so that only the
    change watch shows others' changes); returns the environment that selects it."""
    published = httpx.get(f"{simulator}/_sandbox/", timeout=10).json()
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text(
        'default_profile = "team"\n[tracking]\ninterval_seconds = 3600\n'
        f'[profiles.team]\nenvironment = "sandbox"\nrefunds_enabled = true\nledger = "{where}"\n'
        + "".join(f'[profiles.team.{p}]\nbase_url = "{published[p]["base_url"]}"\n' for p in ("vesicash", "novasend")),
        "utf-8",
    )
    env = {"REFUND_TUI_HOME": str(home)}
    for provider in ProviderName:
        for field in FIELDS[provider]:
            env[env_variable("team", provider, field)] = published[provider.value][field]
    return env


@contextlib.asynccontextmanager
async def console(kind: str, where: str, simulator: str, home: Path):
    """The real console (``run_test``, headless, 100x30) on ``profile_home``. Yields (app, pilot)."""
    from refund_tui.session import Session
    from refund_tui.tui.app import RefundApp

    os.environ.update(profile_home(Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=home)), where, simulator))
    session = await asyncio.to_thread(Session.open, "team")
    app = RefundApp(session=session)
    # No start-up recovery: the benchmark's thousands of unanswered attempts were never sent,
    # and looking each up at the simulator (in this process) would be timed instead.
    app.recover_at_start = lambda: None
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            yield app, pilot
    finally:
        await session.aclose()


async def _board_shown(app, pilot) -> None:
    from refund_tui.tui.screens.board import BoardScreen

    while not (isinstance(app.screen, BoardScreen) and app.screen.last_data is not None):
        await pilot.pause(0.005)


def console_change_latency(kind: str, where: str, simulator: str, home: Path) -> str:
    """A change on one console (here: another connection records a refund) -> visible on
    another's open board: its change watch polled every WATCH_INTERVAL, the board re-read
    and repainted."""

    async def measure() -> list[float]:
        from refund_tui.tui.screens.board import BoardTable

        samples = []
        async with console(kind, where, simulator, home) as (app, pilot):
            with open_kind(kind, where) as writer:
                await app.run_action("show_board")
                await _board_shown(app, pilot)
                for number in range(CHANGES // 2):
                    attempt = await asyncio.to_thread(
                        writer.record_attempt, new_attempt(f"console_{number}"), limit=Money(10**9, "XOF"),
                        known_references=(),
                    )  # fmt: skip
                    started = time.perf_counter()
                    table = app.screen.query_one(BoardTable)
                    while not any(key.value == attempt.attempt_id for key in table.rows):
                        await pilot.pause(0.005)
                    samples.append((time.perf_counter() - started) * 1000)
        return samples

    samples = asyncio.run(measure())
    return f"median {statistics.median(samples):6.0f} ms  max {max(samples):6.0f} ms"


def board_first_paint(where: str, simulator: str, home: Path) -> str:
    """From the ``b`` key to the board's first rows, and to all its rows, on the terminal of
    the real console (a child process on a pseudo-terminal at 80x24, ``benchmarks.startup``)
    whose profile's ledger is ``where``, holding BOARD_SIZE attempts; median of PAINT_RUNS."""
    home = Path(tempfile.mkdtemp(prefix="paint-", dir=home))
    env = child_env(home)
    env.update(profile_home(home, where, simulator))
    painted, full = [], []
    for _ in range(PAINT_RUNS):
        terminal = Terminal(CONSOLE, env)
        try:
            first, every = open_board(terminal, f"of {BOARD_SIZE:,}".encode(), f"{ROW_LIMIT:,} of {BOARD_SIZE:,}".encode())
            painted.append(first)
            full.append(every)
        finally:
            terminal.quit()
    runs = ", ".join(f"{seconds * 1000:.0f}" for seconds in painted)
    return (f"first rows {statistics.median(painted) * 1000:5.0f} ms  "
            f"(all {ROW_LIMIT:,} rows {statistics.median(full) * 1000:5.0f} ms; first rows in each run: {runs})")  # fmt: skip


def main() -> None:
    admin = os.environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL
    with tempfile.TemporaryDirectory(prefix="refund-tui-bench-") as name, session_database(admin) as url:
        directory = Path(name)
        setup(url)
        rows = [
            (f"intent record x{INTENTS}", intent_latency),
            (f"{WORKERS} processes racing for {ALLOWED} refunds of one payment", race),
            ("change seen by another connection's watch", change_latency),
        ]
        places = {"sqlite": str(directory / "ledger.sqlite3"), "postgres": url}
        for label, measure in rows:
            print(f"{label}:")
            for kind, where in places.items():
                print(f"  {kind:<9} {measure(kind, where)}")
        print(f"change on one connection -> visible on another console's open board (x{CHANGES // 2}):")
        with EmbeddedSandbox() as simulator:
            for kind, where in places.items():  # the same rows in both, as above
                print(f"  {kind:<9} {console_change_latency(kind, where, simulator.url, directory)}")
    # The board's figures on ledgers holding BOARD_SIZE answered attempts and nothing else (the
    # rows above never had answers: the console's start-up recovery would look them all up).
    with tempfile.TemporaryDirectory(prefix="refund-tui-board-") as name, session_database(admin) as url:
        directory = Path(name)
        setup(url)
        board = directory / "board.sqlite3"
        bulk_load(board, BOARD_SIZE, answered=True)  # as pg_bulk_load's
        started = time.perf_counter()
        pg_bulk_load(url, BOARD_SIZE)
        print(f"board read (open + read_board), {BOARD_SIZE:,} attempts "
              f"(PostgreSQL loaded in {time.perf_counter() - started:.0f} s):")  # fmt: skip
        print(f"  {'sqlite':<9} {first_board_read('sqlite', str(board))}")
        print(f"  {'postgres':<9} {first_board_read('postgres', url)}")
        print(f"board first paint in the console at 80x24, 'b' to rows, {BOARD_SIZE:,} attempts "
              f"(median of {PAINT_RUNS}):")  # fmt: skip
        with EmbeddedSandbox() as simulator:
            for kind, where in (("sqlite", str(board)), ("postgres", url)):
                print(f"  {kind:<9} {board_first_paint(where, simulator.url, directory)}")


if __name__ == "__main__":
    main()
