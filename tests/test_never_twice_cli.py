"""Never pay twice, never lose the trail, as scripts meet it: real processes, real clocks."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from tests.clock import command, needs_faketime, run
from tests.test_cli import NOVASEND, VESICASH, cli, executed, ledger_attempts, refund_args


def _ledger_files(env):
    from pathlib import Path

    return sorted((Path(env["REFUND_TUI_HOME"]) / "data").glob("ledger-sandbox.sqlite3*"))


BOTH = pytest.mark.parametrize("payment", [VESICASH, NOVASEND], ids=["vesicash", "novasend"])


@needs_faketime
@BOTH
def test_a_fast_clock_never_makes_a_refund_pay_twice(sandbox, cli_env, payment):
    reference = sandbox.create_payment(**payment)
    sandbox.faults(drop_next=1)  # executed, answer lost

    run(cli_env, 10, *refund_args(payment, reference, "100"))
    recovered = run(cli_env, 11, "recover", "--json")  # a minute later: past any old lease

    [refund] = executed(sandbox, reference)
    assert recovered.returncode == 0, recovered.stderr
    status = json.loads(cli(cli_env, "status", "--json").stdout)["refunds"]
    assert [attempt["refund_reference"] for attempt in status] == [refund["refund_reference"]]


@BOTH
def test_a_ledger_deleted_while_a_refund_is_sent_is_refused_with_the_request(
    sandbox, cli_env, payment
):
    reference = sandbox.create_payment(**payment)
    sandbox.faults(latency_ms=1500)
    process = subprocess.Popen(
        command(0, *refund_args(payment, reference, "100")),
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while ledger_attempts(cli_env) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    for file in _ledger_files(cli_env):
        file.unlink()
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 3, stderr
    assert "was deleted" in stderr and "Traceback" not in stderr
    trail = json.loads(stdout[stdout.index("\n{") :])  # after the summary shown before sending
    [refund] = executed(sandbox, reference)
    assert trail["payment_reference"] == reference and trail["amount"] in ("100", "100.00")
    assert trail["tag"] in trail["body"] and trail["attempt_id"]

    for args in (("status",), ("recover",), (*refund_args(payment, reference, "100"),)):
        refused = cli(cli_env, *args)
        assert refused.returncode == 1, args
        assert "is missing" in refused.stderr and "ledger init --force" in refused.stderr
    assert len(executed(sandbox, reference)) == 1
    assert cli(cli_env, "ledger", "init", "--force").returncode == 0
    assert cli(cli_env, "status").returncode == 0


def test_a_replaced_ledger_is_refused_until_started_afresh(sandbox, cli_env, tmp_path):
    assert cli(cli_env, "status").returncode == 0
    other = dict(cli_env, REFUND_TUI_HOME=str(tmp_path / "other"))
    assert cli(other, "status").returncode == 0
    [ours] = [file for file in _ledger_files(cli_env) if file.suffix == ".sqlite3"]
    for file in _ledger_files(cli_env):
        file.unlink()
    shutil.copy(tmp_path / "other" / "data" / ours.name, ours)

    refused = cli(cli_env, "status")

    assert refused.returncode == 1
    assert "is another ledger" in refused.stderr and "replaced" in refused.stderr
    started = cli(cli_env, "ledger", "init", "--force")
    assert started.returncode == 0, started.stderr
    assert "set aside" in started.stdout
    assert cli(cli_env, "status").returncode == 0


def test_ledger_init_refuses_to_replace_a_working_ledger(sandbox, cli_env):
    assert cli(cli_env, "status").returncode == 0

    refused = cli(cli_env, "ledger", "init")

    assert refused.returncode == 1
    assert "already has a ledger" in refused.stderr


@BOTH
def test_the_same_refund_run_again_after_exit_3_is_refused_while_in_flight(
    sandbox, cli_env, payment
):
    reference = sandbox.create_payment(**payment)
    sandbox.faults(fail_refunds_next=50)
    first = cli(cli_env, *refund_args(payment, reference, "100"))
    sandbox.faults(fail_refunds_next=0)

    again = cli(cli_env, *refund_args(payment, reference, "100"))

    assert first.returncode == 3, first.stderr
    assert again.returncode == 1
    assert "still in flight with no known outcome" in again.stderr
    assert executed(sandbox, reference) == []
