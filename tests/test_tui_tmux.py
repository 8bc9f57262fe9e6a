"""The real console in a real terminal: tmux at 80x24, keys sent as a terminal sends them.

Pilot feeds key events straight to the app; these tests go through the terminal driver and
its parser, where an ``esc`` followed at once by a key (one burst, as over SSH) used to be
read as one key. Each waits for text to appear on the pane, with a deadline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_team_ledger import team  # noqa: F401 - the fixture, for two consoles on one ledger

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None and os.environ.get("CI") != "true",
    reason="tmux is not installed on this machine",
)
REPO = Path(__file__).resolve().parents[1]


class Pane:
    """refund-tui running in a detached tmux session on its own tmux server."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True)
        return done.stdout

    def send(self, *keys: str) -> None:
        """Keys in tmux's names (Escape, Down, Enter, or text), written to the pane at once."""
        self.tmux("send-keys", "-t", "console", *keys)

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "console")

    def wait_for(self, *phrases: str, timeout: float = 20.0) -> str:
        """The pane's text once every phrase is on it; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            if all(phrase in shown for phrase in phrases):
                return shown
            assert time.monotonic() < deadline, f"never showed {phrases}; the pane:\n{shown}"
            time.sleep(0.05)


@pytest.fixture
def console(sandbox_env: Path) -> Iterator[Pane]:
    """The console on the sandbox profile (the test simulator), at 80x24 in tmux."""
    pane = Pane(f"refund-tui-test-{uuid.uuid4().hex[:8]}")
    env = [f"-e{name}={os.environ[name]}" for name in ("REFUND_TUI_HOME", "REFUND_TUI_SANDBOX_URL")]
    command = f"{sys.executable} -m refund_tui"
    pane.tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", "-c", str(REPO), *env, command)
    try:
        pane.wait_for("REFUNDS ENABLED", "Sandbox demo payments")
        yield pane
    finally:
        subprocess.run(["tmux", "-L", pane.socket, "kill-server"], capture_output=True)


def test_first_screen_help_and_a_demo_payment_at_80x24(console: Pane):
    first = console.wait_for("Needs attention (0)", "VSC-GH-FRESH", "? Help")
    assert "fresh: a plain full or partial refund" in first

    console.send("?")  # the reference field is empty: help
    console.wait_for("Sandbox", "9904", "Everywhere")
    console.send("Escape")
    console.wait_for("Sandbox demo payments")

    console.send("Down", "Down", "Enter")  # one burst: the second demo payment
    console.wait_for("Payment     VSC-GH-PARTIAL", "CAN REFUND up to 150.00 GHS")


def test_esc_then_a_key_in_one_burst_is_two_keys(console: Pane):
    console.send("VSC-GH-FRESH")
    console.wait_for("VSC-GH-FRESH")
    console.send("Escape", "b")  # leave the field, then the board; once read as ctrl+left
    console.wait_for("All refunds", "/ Filter")

    console.send("l")
    console.wait_for("Sandbox demo payments")
    console.send("Enter")  # the reference is still typed: look it up
    console.wait_for("CAN REFUND up to 250.00 GHS")
    console.send("r")
    console.wait_for("Refund VSC-GH-FRESH", "Amount")
    console.send("Escape", "?")  # cancel the form, then help; once a bare "?" typed into Amount
    console.wait_for("Keys by scope", "Everywhere")


def test_a_burst_of_edits_lands_in_order(console: Pane):
    """Backspaces are key bindings, typed characters are not: in one burst the characters
    must not overtake the backspaces sent before them (they once deleted what followed)."""
    console.send("VSC-GH-FRESHXXXXXX")
    console.wait_for("VSC-GH-FRESHXXXXXX")
    console.send(*["BSpace"] * 6, "-0", "/", "b")  # one write; "/" and "b" stay in the field
    shown = console.wait_for("VSC-GH-FRESH-0/b")
    assert "VSC-GH-FRESH-0/bX" not in shown


def test_the_board_and_details_explain_failed_and_unknown_refunds_at_80x24(console: Pane, sandbox):
    """Items 5 and 6 of the first hour, through a real terminal: the failure reason reads at
    80 columns, and an unknown Vesicash refund says what it waits for and what to do."""
    from tests.test_cli import cli, refund_args

    env = dict(os.environ)
    fails = dict(provider="vesicash", amount=500, currency="GHS", phone="+233241239901")
    failed = sandbox.create_payment(**fails)
    assert cli(env, *refund_args(fails, failed, "100")).returncode == 0
    sandbox.advance(60)  # the wallet is not found: the refund fails
    unknown = sandbox.create_payment(**dict(fails, phone="+233241234567"))
    sandbox.faults(fail_refunds_next=1)
    assert cli(env, *refund_args(fails, unknown, "100")).returncode == 3

    console.wait_for("Needs attention (2)")
    console.send("Escape")
    console.send("b")
    board = console.wait_for("!! FAILED", "?? UNKNOWN", "Recipient wallet not found", "? Help")
    assert all(len(line) <= 80 for line in board.splitlines())
    deadline = time.monotonic() + 20
    while "Outcome unknown" not in console.text():  # enter on the newest row, the unknown one,
        assert time.monotonic() < deadline  # once the board's first refresh has settled
        console.send("Enter")
        time.sleep(0.5)
    # the footer offers R once the details are read: a frame after their text, at the latest
    console.wait_for("Outcome unknown", "never resent", "R Resend")


def test_two_consoles_on_one_team_ledger_b_sees_as_refund_within_a_second(team, sandbox):
    """Operators A and B, each in a real terminal, on one PostgreSQL ledger: A refunds from
    the console; B's open board shows it within 1 s of its intent being recorded."""
    from refund_tui.ledgers.postgres import PostgresLedger
    from tests.test_team_ledger import PAYMENTS

    reference = sandbox.create_payment(**PAYMENTS["vesicash"])
    panes = {}
    try:
        for name in ("a", "b"):
            panes[name] = pane = Pane(f"refund-tui-test-{uuid.uuid4().hex[:8]}")
            env = [f"-e{variable}={value}" for variable, value in team.home(name).items()
                   if variable.startswith("REFUND_TUI_")]  # fmt: skip
            pane.tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", "-c", str(REPO),
                      *env, f"{sys.executable} -m refund_tui")  # fmt: skip
        a, b = panes["a"], panes["b"]
        b.wait_for("REFUNDS ENABLED", "Needs attention")
        for _ in range(20):  # "b" opens the board once the providers are connected too
            b.send("Escape", "b")
            time.sleep(0.5)
            if "All refunds" in b.text():
                break
        b.wait_for("All refunds", "0 shown")
        a.wait_for("REFUNDS ENABLED", "Reference")
        a.send(reference, "Enter")
        a.wait_for("CAN REFUND up to 500.00 GHS")
        a.send("r")
        a.wait_for("Reason", "Review")
        a.send("Tab", "Tab", "Tab", "Duplicate charge")  # amount (all of it), phone, country
        a.wait_for("Duplicate charge")
        a.send("C-s")
        a.wait_for("Type 500.00 to confirm")
        a.send("500.00", "Enter")
        b.wait_for(reference, timeout=10)
        seen = time.time()
        with PostgresLedger(team.database_url) as ledger:
            [attempt] = ledger.attempts(payment_reference=reference)
        assert seen - attempt.created_at.timestamp() < 1.0
    finally:
        for pane in panes.values():
            subprocess.run(["tmux", "-L", pane.socket, "kill-server"], capture_output=True)
