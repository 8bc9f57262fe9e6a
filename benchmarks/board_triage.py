"""The board's read with triage as a team, side by side on SQLite and PostgreSQL in one run.

With 100,000 attempts and 1,000 of them claimed: the board's whole read of everyone's refunds
(a 500-row page, counts, retried ids and the claims in force: ``read_board``), and of "mine"
(``w``) when every attempt is mine, the worst case: the filter reads all of them, as a text
filter does; and the claims alone, what triage adds to each read (the rest is as before). Run: ``python benchmarks/board_triage.py`` (a few minutes). Uses the server at
``REFUND_TUI_TEST_POSTGRES`` in a database of its own, dropped at the end. Prints, does not
assert.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ledger import OPERATOR, bulk_load  # noqa: E402
from benchmarks.ledger_postgres import BOARD_SIZE, open_kind, pg_bulk_load  # noqa: E402
from refund_tui.core.ledger import whoami  # noqa: E402
from refund_tui.ledgers.postgres import setup  # noqa: E402
from refund_tui.ledgers.sqlite import SqliteLedger  # noqa: E402
from refund_tui.tui.screens.board import BoardQuery, read_board  # noqa: E402
from tests.postgres import DEFAULT_URL, URL_VARIABLE, session_database  # noqa: E402

CLAIMED = 1_000
PAGE = 500


def claim_sqlite(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        for attempt in ledger.attempts(limit=CLAIMED):
            ledger.claim(attempt.attempt_id, OPERATOR)


def claim_postgres(url: str) -> None:
    with psycopg.connect(url, options="-c search_path=refund_tui") as conn:
        conn.execute(
            """INSERT INTO triage (attempt_id, at, action, operator_name, operator_uid, hostname)
            SELECT attempt_id, now(), 'claim', 'bench', 1000, 'bench-host'
            FROM attempts ORDER BY seq DESC LIMIT %s""",
            (CLAIMED,),
        )
        conn.execute("ANALYZE")  # as autovacuum would have, long before 100,000 refunds


def board_reads(kind: str, where: str) -> str:
    figures = []
    with open_kind(kind, where) as ledger:
        for query in (BoardQuery(), BoardQuery(mine=whoami(ledger, OPERATOR))):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                data = read_board(ledger, query, datetime.now(UTC), limit=PAGE)
                times.append((time.perf_counter() - started) * 1000)
            assert len(data.claims) == CLAIMED and data.matched == BOARD_SIZE
            figures.append(f"{'mine' if query.mine else 'all'} {statistics.median(times):7.1f} ms")
        times = []
        for _ in range(3):  # what triage adds to every read of the board
            started = time.perf_counter()
            ledger.claims()
            times.append((time.perf_counter() - started) * 1000)
        figures.append(f"(claims alone {statistics.median(times):5.1f} ms)")
    return "  ".join(figures)


def main() -> None:
    import os

    admin = os.environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL
    with tempfile.TemporaryDirectory(prefix="refund-tui-bench-") as name, session_database(admin) as url:
        board = Path(name) / "board.sqlite3"
        bulk_load(board, BOARD_SIZE)
        claim_sqlite(board)
        setup(url)
        pg_bulk_load(url, BOARD_SIZE)
        claim_postgres(url)
        print(f"board read ({PAGE}-row page, counts, claims), {BOARD_SIZE:,} attempts, "
              f"{CLAIMED:,} claimed, median of 3:")  # fmt: skip
        print(f"  {'sqlite':<9} {board_reads('sqlite', str(board))}")
        print(f"  {'postgres':<9} {board_reads('postgres', url)}")


if __name__ == "__main__":
    main()
