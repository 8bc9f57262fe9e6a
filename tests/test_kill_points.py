"""SIGKILL at random points of ``refund``, clocks off by ten minutes either way, then
``recover``: what the simulator executed always equals what the ledger says moved money, and
every attempt still open has its reason shown."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from tests.clock import command, needs_faketime, run
from tests.test_cli import NOVASEND, VESICASH, executed, refund_args

RUNS_PER_PROVIDER = 50
WORKERS = 4
OFFSETS = (-10, 0, 10)


def _attempts(home: Path, reference: str) -> list[tuple[str, str, str | None]]:
    """(attempt id, status, provider reference) of the payment's attempts in the ledger."""
    with closing(sqlite3.connect(home / "data" / "ledger-sandbox.sqlite3")) as conn:
        return conn.execute(
            """SELECT a.attempt_id, c.status, c.provider_reference FROM attempts a
            JOIN current_state c ON c.attempt_seq = a.seq WHERE a.payment_reference = ?""",
            (reference,),
        ).fetchall()


def _moved_money(home: Path, reference: str) -> list[str]:
    """Provider references the ledger holds for the payment's attempts."""
    return sorted(moved for _, _, moved in _attempts(home, reference) if moved is not None)


def _open(home: Path, reference: str) -> bool:
    """Whether an attempt of the payment has neither a provider reference nor a final status."""
    final = {"completed", "failed", "reversed"}
    return any(moved is None and status not in final for _, status, moved in _attempts(home, reference))


def _killed_refund(sandbox, env: dict[str, str], payment: dict, chance: random.Random) -> str:
    """A refund process killed at a random moment; returns the payment's reference."""
    reference = sandbox.create_payment(**payment)
    refund = subprocess.Popen(
        command(chance.choice(OFFSETS), *refund_args(payment, reference, "100")),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(chance.uniform(0.4, 1.4))  # start-up, intent, request, answer: anywhere
    refund.send_signal(signal.SIGKILL)
    refund.wait()
    return reference


@needs_faketime
@pytest.mark.parametrize("payment", [VESICASH, NOVASEND], ids=["vesicash", "novasend"])
def test_random_kills_and_skewed_clocks_never_pay_twice_or_lose_an_attempt(
    sandbox, cli_env, tmp_path, payment
):
    """Each worker is a host with its own ledger: its refunds are killed one after another,
    then it recovers them all with its clock off."""

    def host(index: int) -> tuple[Path, list[str], subprocess.CompletedProcess]:
        chance = random.Random(index)
        home = tmp_path / f"host{index}"
        env = dict(cli_env, REFUND_TUI_HOME=str(home))
        references = [
            _killed_refund(sandbox, env, payment, chance)
            for _ in range(index, RUNS_PER_PROVIDER, WORKERS)
        ]
        return home, references, run(env, chance.choice(OFFSETS), "recover", "--json")

    with ThreadPoolExecutor(WORKERS) as pool:
        hosts = list(pool.map(host, range(WORKERS)))

    assert sum(len(references) for _, references, _ in hosts) == RUNS_PER_PROVIDER
    for home, references, recovered in hosts:
        assert recovered.returncode in (0, 3), recovered.stderr
        for reference in references:  # nothing lost: every execution has its attempt
            assert len(executed(sandbox, reference)) <= len(_attempts(home, reference)), reference
        for attempt in json.loads(recovered.stdout)["refunds"]:
            if attempt["refund_reference"] is None:  # still open: it says why
                assert attempt["outcome"], attempt
                if payment is VESICASH:
                    assert attempt["outcome"].startswith("waiting: the payment record shows no refund")

    # A request the provider was still executing when `recover` asked (a loaded machine) left
    # its attempt open; once nothing is in flight, the next `recover` settles it, and then the
    # provider's executions and the ledger agree exactly.
    for home, references, _ in hosts:
        if any(_open(home, reference) for reference in references):
            run(dict(cli_env, REFUND_TUI_HOME=str(home)), 0, "recover", "--json")
        for reference in references:
            executions = sorted(r["refund_reference"] for r in executed(sandbox, reference))
            assert executions == _moved_money(home, reference), (reference, _attempts(home, reference))
