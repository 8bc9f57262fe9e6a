"""Console start-up and status-board figures, printed against their targets (not a test).

Run from the repository root: ``python benchmarks/startup.py [--runs N]`` (about a minute).

1. Start-up: process start to first painted screen, for ``python -m refund_tui`` and for a
   minimal Textual app (Header, DataTable, Footer), each in a child process on a
   pseudo-terminal at 80x24 and timed the same way: until the first screen's own text
   appears on the terminal; and for the console, until its profile is ready (the banner
   shows the mode). Runs alternate between the two; medians and their ratios to the minimal
   app's first paint.
2. With 10,000 refunds in the ledger (recorded through the Ledger API):
   - the board's first paint: in the console on a pseudo-terminal, from the ``b`` key to the
     board's rows on the terminal;
   - a refresh that changes 100 rows: ``BoardScreen.apply`` timed on a mounted board
     (``run_test``), alone and with the repaint that follows;
   - the console's peak RSS with that board open (``wait4`` rusage of the child).
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import dataclasses
import fcntl
import os
import resource
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from refund_tui.tui.screens.board import FIRST_PAINT_ROWS, ROW_LIMIT  # noqa: E402

SIZE = (80, 24)
LEDGER_SIZE = 10_000
CHANGED_ROWS = 100
TARGETS = {"ratio": 1.5, "ready_ratio": 2.5, "board_paint": 0.5, "refresh": 0.050, "rss_mb": 150}

MINIMAL_APP = """
from textual.app import App
from textual.widgets import DataTable, Footer, Header

class Minimal(App):
    TITLE = "minimal-startup-app"

    def compose(self):
        yield Header()
        yield DataTable()
        yield Footer()

Minimal().run()
"""
#: Text each app paints on its first screen.
MINIMAL_FIRST_SCREEN = b"minimal-startup-app"
CONSOLE_FIRST_SCREEN = b"payment reference"
#: Text that shows the session is open (the banner's mode), the board's first rows, all its rows.
SESSION_OPEN = b"REFUNDS ENABLED"
BOARD_ROWS = f"of {LEDGER_SIZE:,}".encode()
BOARD_FULL = f"{ROW_LIMIT:,} of {LEDGER_SIZE:,}".encode()
CTRL_Q = b"\x11"


class Terminal:
    """A child process on its own pseudo-terminal, read as it writes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        self.started = time.perf_counter()
        self.pid = os.fork()
        if self.pid == 0:  # the child: the terminal becomes its stdin, stdout and stderr
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.chdir(REPO)
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        os.close(slave)
        self.master = master
        self.output = bytearray()

    def wait_for(self, text: bytes, timeout: float = 60.0) -> float:
        """Seconds from process start until ``text`` appears on the terminal."""
        deadline = time.perf_counter() + timeout
        while text not in self.output:
            if time.perf_counter() > deadline or not self._read(deadline - time.perf_counter()):
                tail = bytes(self.output[-400:])
                raise RuntimeError(f"{text!r} never appeared; the terminal ended with {tail!r}")
        return time.perf_counter() - self.started

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def quit(self) -> resource.struct_rusage:
        """Press ctrl+q and reap the child (killed if it lingers); returns its resource usage."""
        self.press(CTRL_Q)
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline:
            pid, _, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                break
            self._read(0.05)
        else:
            print(f"   (pid {self.pid} did not quit on ctrl+q: killed)")
            os.kill(self.pid, signal.SIGKILL)
            _, _, usage = os.wait4(self.pid, 0)
        os.close(self.master)
        return usage


def child_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REFUND_TUI_")}
    env.update(REFUND_TUI_HOME=str(home), TERM="xterm-256color", PYTHONPATH=str(REPO))
    return env


CONSOLE = [sys.executable, "-m", "refund_tui"]
MINIMAL = [sys.executable, "-c", MINIMAL_APP]


def bytecode_state() -> str:
    cached = any((REPO / "refund_tui").rglob("__pycache__/*.pyc"))
    return "refund-tui byte-compiled" if cached else "refund-tui compiled from source at each start"


@contextlib.contextmanager
def compiled_package():
    """refund_tui byte-compiled (in its __pycache__ folders) while the block runs."""
    package = REPO / "refund_tui"
    existing = set(package.rglob("__pycache__"))
    compileall.compile_dir(package, quiet=1)
    try:
        yield
    finally:
        for folder in set(package.rglob("__pycache__")) - existing:
            shutil.rmtree(folder)


def startup(runs: int) -> tuple[float, float]:
    """First paint of both apps, and the console's profile ready (banner filled)."""
    times: dict[str, list[float]] = {"refund-tui": [], "minimal app": [], "profile ready": []}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="refund-tui-startup-") as home:
            console = Terminal(CONSOLE, child_env(Path(home)))
            times["refund-tui"].append(console.wait_for(CONSOLE_FIRST_SCREEN))
            times["profile ready"].append(console.wait_for(SESSION_OPEN))
            console.quit()
            minimal = Terminal(MINIMAL, child_env(Path(home)))
            times["minimal app"].append(minimal.wait_for(MINIMAL_FIRST_SCREEN))
            minimal.quit()
    print(f"1. Start-up at 80x24 (median of {runs} runs; the sandbox's first start included; "
          f"{bytecode_state()})")
    for name, samples in times.items():
        spread = ", ".join(f"{sample:.3f}" for sample in samples)
        print(f"   {name:<13} {statistics.median(samples):.3f} s   ({spread})")
    minimal = statistics.median(times["minimal app"])
    ratios = []
    for name, what, target in (
        ("refund-tui", "first paint", TARGETS["ratio"]),
        ("profile ready", "profile ready", TARGETS["ready_ratio"]),
    ):
        ratio = statistics.median(times[name]) / minimal
        ratios.append(ratio)
        print(f"   {what:<13} / minimal first paint  {ratio:.2f}   target <= {target}  "
              f"{verdict(ratio <= target)}")
    return ratios[0], ratios[1]


def fill_ledger(home: Path) -> float:
    """Record LEDGER_SIZE attempts through the Ledger API, with a realistic mix of outcomes."""
    from refund_tui.config import paths
    from refund_tui.core.ledger import NewAttempt, Operator
    from refund_tui.core.models import ProviderName, RefundStatus
    from refund_tui.core.money import Money
    from refund_tui.core.provider import RefundRequest
    from refund_tui.ledgers.sqlite import SqliteLedger

    outcomes = [RefundStatus.COMPLETED] * 17 + [RefundStatus.FAILED] * 2 + [RefundStatus.PROCESSING]
    operator = Operator(name="bench", uid=1000, hostname="bench-host", ssh_client=None)
    os.environ["REFUND_TUI_HOME"] = str(home)
    started = time.perf_counter()
    with SqliteLedger(paths().ledger_file("sandbox")) as ledger:
        for number in range(LEDGER_SIZE):
            payment = f"tr_bench_{number}"
            request = RefundRequest(
                provider=ProviderName.NOVASEND, payment_reference=payment, method="POST",
                path=f"/v1/payin/{payment}/refund",
                body='{"amount":1500,"reason":"Duplicate charge","externalReference":"x"}',
                idempotency_key=str(uuid.uuid4()), external_reference=f"rtui-{number}",
                amount=Money(1500 + number, "XOF"),
            )  # fmt: skip
            attempt = ledger.record_attempt(
                NewAttempt(
                    profile="sandbox", environment="sandbox", provider=ProviderName.NOVASEND,
                    payment_reference=payment, amount=Money(1500 + number, "XOF"),
                    phone="+2250755550101", country_id=None, reason="Duplicate charge",
                    webhook_url=None, request=request, operator=operator,
                ),  # fmt: skip
                limit=Money(10**9, "XOF"),
                known_references=(),
            )
            outcome = outcomes[number % len(outcomes)]
            failure = "Recipient wallet not found" if outcome is RefundStatus.FAILED else None
            ledger.add_event(
                attempt.attempt_id, outcome, "poll", provider_reference=f"rf_bench_{number}",
                failure_reason=failure,
            )  # fmt: skip
    return time.perf_counter() - started


def open_board(terminal: Terminal, first_rows: bytes, all_rows: bytes) -> tuple[float, float]:
    """On a console just started: seconds from ``b`` until ``first_rows`` and until
    ``all_rows`` (texts of the board's scope line) appear on its terminal."""
    terminal.wait_for(SESSION_OPEN)
    terminal.press(b"\x1b")  # leave the reference field, as an operator would
    time.sleep(1.0)
    pressed = time.perf_counter() - terminal.started
    terminal.press(b"b")
    return terminal.wait_for(first_rows) - pressed, terminal.wait_for(all_rows) - pressed


def board_in_console(home: Path) -> tuple[float, float, float]:
    """Seconds from ``b`` to the board's first rows and to all its rows, and peak RSS in MB."""
    terminal = Terminal(CONSOLE, child_env(home))
    painted, full = open_board(terminal, BOARD_ROWS, BOARD_FULL)
    time.sleep(2.5)  # one live refresh (polls the refunds in flight) before measuring memory
    usage = terminal.quit()
    return painted, full, usage.ru_maxrss / 1024


async def refresh_on_mounted_board(home: Path, rounds: int = 10) -> tuple[float, float]:
    """Median seconds of ``apply`` changing CHANGED_ROWS rows: alone, and with the repaint."""
    from refund_tui.core.models import RefundStatus
    from refund_tui.session import Session
    from refund_tui.tui.app import RefundApp
    from refund_tui.tui.screens.board import BoardScreen, read_board

    os.environ["REFUND_TUI_HOME"] = str(home)
    session = Session.open("sandbox")
    app = RefundApp(session=session)
    applied, repainted = [], []

    def flip(status: RefundStatus) -> RefundStatus:
        """Failed if it was not, else completed: every cell of the row changes."""
        return RefundStatus.COMPLETED if status is RefundStatus.FAILED else RefundStatus.FAILED
    try:
        async with app.run_test(size=SIZE) as pilot:
            await app.run_action("show_board")
            while not isinstance(app.screen, BoardScreen) or app.screen.last_data is None:
                await pilot.pause(0.01)
            board = app.screen
            await pilot.press("p")  # pause live refresh: only the measured updates run
            base = read_board(session.ledger, board.query_state, app.clock())
            flipped = [
                dataclasses.replace(attempt, status=flip(attempt.status))
                for attempt in base.attempts[:CHANGED_ROWS]
            ]
            variants = [
                dataclasses.replace(base, attempts=flipped + base.attempts[CHANGED_ROWS:]),
                base,
            ]
            for round_number in range(rounds):
                data = variants[round_number % 2]
                started = time.perf_counter()
                changed = board.apply(data)
                applied.append(time.perf_counter() - started)
                await pilot.pause()
                repainted.append(time.perf_counter() - started)
                assert changed >= CHANGED_ROWS, changed
    finally:
        await session.aclose()
    return statistics.median(applied), statistics.median(repainted)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="start-up runs per app (default 5)")
    parser.add_argument("--startup-only", action="store_true", help="skip the board figures")
    parser.add_argument("--compiled", action="store_true",
                        help="byte-compile refund_tui first, as an installed copy is (start-up only)")
    args = parser.parse_args()
    with compiled_package() if args.compiled else contextlib.nullcontext():
        startup(args.runs)
    if args.startup_only:
        return
    with tempfile.TemporaryDirectory(prefix="refund-tui-board-") as name:
        home = Path(name)
        print(f"\n2. Status board with {LEDGER_SIZE:,} refunds in the ledger")
        print(f"   ledger filled through the Ledger API in {fill_ledger(home):.1f} s")
        paint, full, rss = board_in_console(home)
        print(f"   board first paint ('b' to rows)  {paint * 1000:7.1f} ms   target < "
              f"{TARGETS['board_paint'] * 1000:.0f} ms  {verdict(paint < TARGETS['board_paint'])}")
        print(f"   all {ROW_LIMIT:,} rows on the board      {full * 1000:7.1f} ms   (first "
              f"{FIRST_PAINT_ROWS} rows paint first, the rest follow below them)")
        applied, repainted = asyncio.run(refresh_on_mounted_board(home))
        refresh_target = TARGETS["refresh"]
        print(f"   refresh changing {CHANGED_ROWS} rows (apply) {applied * 1000:7.1f} ms   "
              f"target < {refresh_target * 1000:.0f} ms  {verdict(applied < refresh_target)}")
        print(f"   same, until repainted          {repainted * 1000:7.1f} ms")
        print(f"   console peak RSS                 {rss:7.1f} MB   "
              f"target < {TARGETS['rss_mb']} MB  {verdict(rss < TARGETS['rss_mb'])}")
        print(f"   (the board shows the newest {ROW_LIMIT:,} rows of a view; "
              "a text filter searches them all)")


if __name__ == "__main__":
    main()
