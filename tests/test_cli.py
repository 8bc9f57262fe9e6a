"""The command line as scripts use it: real processes, real HTTP, the simulator counting refunds."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

VESICASH = dict(provider="vesicash", amount=500, currency="GHS", phone="+233241234567")
NOVASEND = dict(provider="novasend", amount=20000, currency="XOF", phone="+2250701234567")


def cli(env, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "refund_tui", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


def refund_args(payment, reference, amount, *extra):
    return ("refund", "--provider", payment["provider"], "--payment", reference,
            "--amount", amount, "--reason", "Customer cancellation", "--yes", *extra)


def executed(sandbox, reference):
    return [r for r in sandbox.refunds() if r["payment_reference"] == reference]


def ledger_attempts(env):
    path = Path(env["REFUND_TUI_HOME"]) / "data" / "ledger-sandbox.sqlite3"
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as conn:
        try:
            return conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
        except sqlite3.OperationalError:  # schema still being created
            return 0


@pytest.mark.parametrize(
    ("payment", "amount", "extra", "message"),
    [
        (VESICASH, "600", (), "over the refundable balance: max 500.00 GHS"),
        (VESICASH, "10", ("--phone", "0302123456"), "a landline, not a mobile number"),
        (VESICASH, "0", (), "the amount must be more than zero"),
        (VESICASH, "-5", (), "the amount must be more than zero"),
        (VESICASH, "1.005", (), "GHS allows at most 2 decimals"),
        (NOVASEND, "150.5", (), "XOF has no decimals"),
    ],
)
def test_refusals_are_one_line_exit_1_and_send_nothing(sandbox, cli_env, payment, amount, extra, message):
    reference = sandbox.create_payment(**payment)
    result = cli(cli_env, *refund_args(payment, reference, amount, *extra))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("refused:")
    assert executed(sandbox, reference) == []
    assert ledger_attempts(cli_env) == 0


def test_unknown_payment_and_expired_window_are_refused(sandbox, cli_env):
    unknown = cli(cli_env, *refund_args(NOVASEND, "tr_does_not_exist", "100"))
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "refused: Novasend has no payment with reference tr_does_not_exist"
    old = sandbox.create_payment(**NOVASEND, age_days=8)
    expired = cli(cli_env, *refund_args(NOVASEND, old, "100"))
    assert expired.returncode == 1
    assert "refund window closed" in expired.stderr
    assert len(expired.stderr.strip().splitlines()) == 1
    assert executed(sandbox, old) == []


@pytest.mark.parametrize("payment", [VESICASH, NOVASEND], ids=["vesicash", "novasend"])
def test_sigkill_in_flight_is_resolved_by_the_next_run(sandbox, cli_env, payment):
    reference = sandbox.create_payment(**payment)
    sandbox.faults(latency_ms=1500)
    process = subprocess.Popen(
        [sys.executable, "-m", "refund_tui", *refund_args(payment, reference, "100")],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while ledger_attempts(cli_env) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the request is now waiting on the simulator's latency
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert ledger_attempts(cli_env) == 1
    time.sleep(1.6)
    sandbox.faults(latency_ms=0)

    recovered = cli(cli_env, "recover", "--json")

    assert recovered.returncode == 0, recovered.stderr
    [result] = json.loads(recovered.stdout)["refunds"]
    refunds = executed(sandbox, reference)
    assert len(refunds) == 1
    assert result["refund_reference"] == refunds[0]["refund_reference"]
    assert result["status"] in ("pending", "processing", "completed")


@pytest.mark.parametrize("payment", [VESICASH, NOVASEND], ids=["vesicash", "novasend"])
def test_two_processes_at_once_never_exceed_the_cap(sandbox, cli_env, payment):
    reference = sandbox.create_payment(**payment)
    amount = str(payment["amount"] * 6 // 10)
    assert cli(cli_env, "status").returncode == 0  # the ledger exists, as on any working host
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: cli(cli_env, *refund_args(payment, reference, amount)), range(2)))

    codes = sorted(result.returncode for result in results)
    assert codes == [0, 1], [result.stderr for result in results]
    assert len(executed(sandbox, reference)) == 1
    refused = next(result for result in results if result.returncode == 1)
    assert any(
        words in refused.stderr
        for words in ("left to refund", "over the refundable balance", "in flight")
    )


def test_outcome_unknown_exits_3_then_recover_makes_one_refund(sandbox, cli_env):
    reference = sandbox.create_payment(**NOVASEND)
    sandbox.faults(drop_next=1)
    first = cli(cli_env, *refund_args(NOVASEND, reference, "5000"))
    # a dropped answer is resolved at once by resending the stored request with its key
    assert first.returncode == 0, first.stderr
    assert len(executed(sandbox, reference)) == 1

    other = sandbox.create_payment(**NOVASEND)
    sandbox.faults(fail_refunds_next=50)  # the refund endpoint is down; lookups work
    second = cli(cli_env, *refund_args(NOVASEND, other, "100"))
    assert second.returncode == 3, second.stderr
    assert "refund-tui recover" in second.stderr
    sandbox.faults(fail_refunds_next=0)
    recovered = cli(cli_env, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert len(executed(sandbox, other)) == 1


def test_a_vesicash_server_error_is_never_resent_automatically(sandbox, cli_env):
    reference = sandbox.create_payment(**VESICASH)
    sandbox.faults(fail_refunds_next=50)
    sent = cli(cli_env, *refund_args(VESICASH, reference, "100"))
    assert sent.returncode == 3, sent.stderr
    sandbox.faults(fail_refunds_next=0)

    recovered = cli(cli_env, "recover")  # a 5xx may come from a gateway: the provider may still work
    [attempt] = json.loads(cli(cli_env, "status", "--json").stdout)["refunds"]
    resend = cli(cli_env, "resend", attempt["attempt_id"], "--yes")

    assert recovered.returncode == 3
    assert "never resent automatically" in recovered.stdout
    assert resend.returncode == 1
    assert "may still be executing" in resend.stderr and "offered from" in resend.stderr
    assert executed(sandbox, reference) == []


def test_status_json_and_export(sandbox, cli_env):
    reference = sandbox.create_payment(**NOVASEND)
    assert cli(cli_env, *refund_args(NOVASEND, reference, "1000")).returncode == 0
    sandbox.advance(60)
    status = cli(cli_env, "status", reference, "--json")
    [row] = json.loads(status.stdout)["refunds"]
    assert row["status"] == "completed" and row["amount_minor"] == 1000

    exported = cli(cli_env, "export", "--format", "csv")
    lines = exported.stdout.strip().splitlines()
    assert "payment_reference" in lines[0]
    assert sum(reference in line for line in lines) >= 3  # intent, accepted, completed
    as_json = json.loads(cli(cli_env, "export", "--format", "json").stdout)
    assert {row["status"] for row in as_json} >= {"pending", "completed"}
    other_profile = cli(cli_env, "export", "--profile", "prod")
    assert other_profile.returncode == 2
    assert other_profile.stderr.strip() == "error: no profile named 'prod' (known: sandbox)"
    for secret in ("vsc_sec_DEMO_not_a_real_key", "nvs_DEMO_client"):
        assert secret not in exported.stdout


def test_embedded_sandbox_world_persists_between_commands(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUND_TUI_")}
    env["REFUND_TUI_HOME"] = str(tmp_path)
    made = cli(env, "refund", "--provider", "novasend", "--payment", "tr_demo_fresh",
               "--amount", "1000", "--reason", "Duplicate charge", "--yes", "--json")
    assert made.returncode == 0, made.stderr
    refund_reference = json.loads(made.stdout)["refund"]["refund_reference"]

    status = cli(env, "status", "tr_demo_fresh", "--json")

    [row] = json.loads(status.stdout)["refunds"]
    assert row["refund_reference"] == refund_reference
    again = cli(env, "refund", "--provider", "novasend", "--payment", "tr_demo_fresh",
                "--amount", "15000", "--reason", "Duplicate charge", "--yes")
    assert again.returncode == 1
    assert "max 14,000 XOF" in again.stderr


def test_credentials_status_without_a_keyring_backend(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUND_TUI_")}
    env.update(REFUND_TUI_HOME=str(tmp_path), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(
        '[profiles.prod]\nenvironment = "live"\n[profiles.prod.vesicash]\nbase_url = "https://vesicash.invalid"\n'
    )
    result = cli(env, "credentials", "status", "--profile", "prod", "--provider", "vesicash")
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "keyrings.cryptfile" in output and "REFUND_TUI_PROD_VESICASH_SECRET_KEY" in output
    assert result.returncode == 1


def test_ctrl_c_while_sending_leaves_an_unknown_attempt_and_exit_3(sandbox, cli_env):
    reference = sandbox.create_payment(**NOVASEND)
    sandbox.faults(latency_ms=1500)
    process = subprocess.Popen(
        [sys.executable, "-m", "refund_tui", *refund_args(NOVASEND, reference, "100")],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 20
    while ledger_attempts(cli_env) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 3
    assert "refund-tui recover" in stderr and "Traceback" not in stderr
    time.sleep(1.3)
    sandbox.faults(latency_ms=0)
    assert cli(cli_env, "recover").returncode == 0
    assert len(executed(sandbox, reference)) == 1
