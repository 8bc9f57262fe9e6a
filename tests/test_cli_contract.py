"""The command line's contract with scripts: the profile wherever it is typed, one JSON object
per outcome with a stable code and exit code, range-checked options. Real processes, the
simulator counting refunds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import NOVASEND, VESICASH, cli, executed, ledger_attempts, refund_args

#: A config whose default is a profile that can never reach a provider: a command that
#: ignores the profile typed on the command line lands on it and fails.
PROD_DEFAULT = """
default_profile = "prod"

[profiles.prod]
environment = "live"
refunds_enabled = true

[profiles.prod.vesicash]
base_url = "https://127.0.0.1:9"
timeout_seconds = 1
"""

ENVELOPE = {"ok", "code", "message", "exit_code"}


@pytest.fixture
def prod_default(cli_env):
    """``cli_env`` with a config whose default profile is ``prod``, and no keyring."""
    config = Path(cli_env["REFUND_TUI_HOME"]) / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(PROD_DEFAULT, "utf-8")
    return {**cli_env, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def envelope(result) -> dict:
    """The one JSON object a ``--json`` run prints, checked against its exit code."""
    assert "Traceback" not in result.stderr, result.stderr
    outcome = json.loads(result.stdout)
    assert isinstance(outcome, dict), result.stdout
    assert ENVELOPE <= outcome.keys()
    assert outcome["exit_code"] == result.returncode
    assert outcome["ok"] is (result.returncode == 0)
    assert outcome["code"].isidentifier() and outcome["code"].islower()
    assert outcome["message"] and "\n" not in outcome["message"]
    return outcome


# -- the profile, before or after the subcommand (issue 9, defect 1) -------------------------


def test_group_profile_is_honoured_by_refund(sandbox, prod_default):
    reference = sandbox.create_payment(**NOVASEND)

    sent = cli(prod_default, "--profile", "sandbox", *refund_args(NOVASEND, reference, "100"), "--json")

    assert sent.returncode == 0, sent.stderr
    assert envelope(sent)["refund"]["profile"] == "sandbox"
    assert len(executed(sandbox, reference)) == 1


def test_group_profile_unknown_is_a_usage_error_for_every_command(prod_default):
    for command in (("status",), ("recover",), ("export",), ("webhooks", "list"),
                    ("credentials", "status", "--provider", "vesicash")):
        result = cli(prod_default, "--profile", "nosuch", *command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "no profile named 'nosuch'" in one_line(result)


def test_group_profile_reaches_status_and_export(sandbox, prod_default):
    reference = sandbox.create_payment(**NOVASEND)
    assert cli(prod_default, "--profile", "sandbox", *refund_args(NOVASEND, reference, "100")).returncode == 0

    status = cli(prod_default, "--profile", "sandbox", "status", reference, "--json")
    exported = cli(prod_default, "--profile", "sandbox", "export")

    assert [row["payment_reference"] for row in envelope(status)["refunds"]] == [reference]
    assert exported.returncode == 0 and reference in exported.stdout


def test_profile_in_both_positions_must_agree(sandbox, prod_default):
    conflict = cli(prod_default, "--profile", "sandbox", "status", "--profile", "prod")
    assert conflict.returncode == 2
    assert "--profile sandbox" in one_line(conflict) and "--profile prod" in one_line(conflict)
    same = cli(prod_default, "--profile", "sandbox", "status", "--profile", "sandbox")
    assert same.returncode == 0, same.stderr


def test_credentials_take_the_group_profile_and_default_like_the_rest(prod_default):
    by_default = cli(prod_default, "credentials", "status", "--provider", "vesicash")
    from_group = cli(prod_default, "--profile", "prod", "credentials", "status", "--provider", "vesicash")
    for result in (by_default, from_group):
        assert "Traceback" not in result.stderr
        assert "REFUND_TUI_PROD_VESICASH_SECRET_KEY" in result.stdout + result.stderr


# -- the destination of a Novasend refund (issue 9, defect 6) --------------------------------


def test_phone_for_novasend_is_refused_not_ignored(sandbox, cli_env):
    reference = sandbox.create_payment(**NOVASEND)

    result = cli(cli_env, *refund_args(NOVASEND, reference, "100", "--phone", "0701234599"))

    assert result.returncode == 2
    assert "Novasend refunds always go to the paying wallet" in one_line(result)
    assert executed(sandbox, reference) == [] and ledger_attempts(cli_env) == 0


# -- whitespace inside amounts (issue 9, defect 5) -------------------------------------------


@pytest.mark.parametrize("amount", ["1 5", "12\t50", "1 50", "10 00", "1,000 000"])
def test_whitespace_that_is_not_a_thousands_separator_is_refused(sandbox, cli_env, amount):
    reference = sandbox.create_payment(**VESICASH)

    result = cli(cli_env, *refund_args(VESICASH, reference, amount))

    assert result.returncode == 1
    assert one_line(result).startswith(f"refused: amount: {amount!r} is not a number")
    assert executed(sandbox, reference) == []


def test_a_space_between_groups_of_three_is_a_thousands_separator(sandbox, cli_env):
    reference = sandbox.create_payment(**NOVASEND)

    result = cli(cli_env, *refund_args(NOVASEND, reference, "10 000"), "--json")

    assert envelope(result)["refund"]["amount_minor"] == 10000
    assert [refund["amount"] for refund in executed(sandbox, reference)] == [10000]


# -- one JSON object per outcome, for every exit code (issue 10, item 7) ---------------------


def test_json_exit_0_submitted_and_dry_run_share_the_machine_keys(sandbox, cli_env):
    reference = sandbox.create_payment(**VESICASH)

    dry = envelope(cli(cli_env, *refund_args(VESICASH, reference, "120.50"), "--dry-run", "--json"))
    sent = envelope(cli(cli_env, *refund_args(VESICASH, reference, "120.50"), "--json"))

    assert (dry["code"], sent["code"]) == ("dry_run", "submitted")
    assert dry["refund"].keys() - sent["refund"].keys() == {"balance_after_minor"}
    for key in ("provider", "payment_reference", "amount", "amount_minor", "currency",
                "phone_e164", "country_id", "reason"):
        assert dry["refund"][key] == sent["refund"][key], key
    assert sent["refund"]["amount_minor"] == 12050 and sent["refund"]["currency"] == "GHS"
    assert sent["refund"]["phone_e164"] == VESICASH["phone"]
    assert dry["refund"]["request"]["body"]["amount"] == 120.5
    assert "secret" not in json.dumps(dry).lower()
    assert len(executed(sandbox, reference)) == 1


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--amount", "600"), "invalid_refund"),
        (("--amount", "1 5"), "invalid_refund"),
    ],
)
def test_json_exit_1_refusals(sandbox, cli_env, args, code):
    reference = sandbox.create_payment(**VESICASH)
    base = refund_args(VESICASH, reference, "1")
    amount_at = base.index("--amount")
    argv = base[:amount_at] + args + base[amount_at + 2:]

    outcome = envelope(cli(cli_env, *argv, "--json"))

    assert (outcome["exit_code"], outcome["code"]) == (1, code)
    assert outcome["message"].startswith("amount: ")
    assert executed(sandbox, reference) == []


def test_json_exit_1_provider_refusal_names_the_payment(sandbox, cli_env):
    outcome = envelope(cli(cli_env, *refund_args(NOVASEND, "tr_does_not_exist", "100"), "--json"))
    assert (outcome["exit_code"], outcome["code"]) == (1, "provider_error")
    assert "tr_does_not_exist" in outcome["message"]


@pytest.mark.parametrize("payment", [VESICASH, NOVASEND], ids=["vesicash", "novasend"])
def test_json_exit_1_refused_by_the_provider_when_sent(sandbox, cli_env, payment):
    reference = sandbox.create_payment(**payment, merchant_balance=1)

    outcome = envelope(cli(cli_env, *refund_args(payment, reference, "100"), "--json"))

    assert (outcome["exit_code"], outcome["code"]) == (1, "provider_refused")
    assert outcome["refund"]["status"] == "failed"
    assert outcome["message"] == f"refused by the provider: {outcome['refund']['failure_reason']}"
    assert executed(sandbox, reference) == []


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (("refund", "--provider", "novasend", "--json"), "usage_error", "--payment"),
        (("refund", "--provider", "paypal", "--payment", "x", "--amount", "1", "--reason", "r",
          "--yes", "--json"), "usage_error", "paypal"),
        (("status", "--limit", "99999999999999999999", "--json"), "usage_error", "--limit"),
        (("status", "--limit", "0", "--json"), "usage_error", "--limit"),
        (("status", "--no-such-option", "--json"), "usage_error", "--no-such-option"),
        (("--profile", "nosuch", "status", "--json"), "unknown_profile", "nosuch"),
        (("--profile", "sandbox", "recover", "--profile", "prod", "--json"), "profile_conflict", "prod"),
        (("refund", "--provider", "novasend", "--payment", "tr_demo_fresh", "--amount", "1",
          "--reason", "r", "--json"), "confirmation_required", "--yes"),
        (("refund", "--provider", "novasend", "--payment", "tr_demo_fresh", "--amount", "1",
          "--reason", "r", "--phone", "0701234567", "--yes", "--json"), "destination_not_allowed",
         "paying wallet"),
        (("refund", "--provider", "novasend", "--payment", "tr_demo_fresh", "--amount", "1",
          "--reason", "r", "--country", "CI", "--yes", "--json"), "destination_not_allowed",
         "--country cannot be used with Novasend"),
        (("resend", "0123abcd", "--json"), "confirmation_required", "--yes"),
    ],
)
def test_json_exit_2_usage_errors(sandbox, cli_env, argv, code, words):
    result = cli(cli_env, *argv)

    outcome = envelope(result)

    assert (outcome["exit_code"], outcome["code"]) == (2, code)
    assert words in outcome["message"]
    assert result.stderr == ""
    assert ledger_attempts(cli_env) == 0


def test_json_exit_3_outcome_unknown(sandbox, cli_env):
    reference = sandbox.create_payment(**NOVASEND)
    sandbox.faults(fail_refunds_next=50)

    outcome = envelope(cli(cli_env, *refund_args(NOVASEND, reference, "100"), "--json"))
    status = envelope(cli(cli_env, "status", reference, "--json"))
    recovered = envelope(cli(cli_env, "recover", "--json"))

    assert (outcome["exit_code"], outcome["code"]) == (3, "outcome_unknown")
    assert outcome["refund"]["status"] == "unknown" and "recover" in outcome["message"]
    assert (status["exit_code"], status["code"]) == (3, "outcome_unknown")
    assert (recovered["exit_code"], recovered["code"]) == (3, "outcome_unknown")
    assert [row["payment_reference"] for row in recovered["refunds"]] == [reference]


def json_refund_while_sending(sandbox, cli_env, meanwhile) -> tuple[str, dict]:
    """A ``refund --json`` run held by provider latency; ``meanwhile(process)`` runs once its
    intent is recorded. The payment reference and the run's one JSON object."""
    reference = sandbox.create_payment(**NOVASEND)
    sandbox.faults(latency_ms=1500)
    process = subprocess.Popen(
        [sys.executable, "-m", "refund_tui", *refund_args(NOVASEND, reference, "100"), "--json"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 20
    while ledger_attempts(cli_env) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    meanwhile(process)
    stdout, stderr = process.communicate(timeout=30)
    assert stderr == ""
    return reference, envelope(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))


def test_json_exit_3_interrupted_while_sending(sandbox, cli_env):
    _, outcome = json_refund_while_sending(sandbox, cli_env, lambda process: process.send_signal(signal.SIGINT))

    assert (outcome["exit_code"], outcome["code"]) == (3, "interrupted")
    assert "refund-tui recover" in outcome["message"]


def test_json_exit_3_ledger_lost_while_sending_carries_the_request(sandbox, cli_env):
    def delete_the_ledger(_process):
        for file in (Path(cli_env["REFUND_TUI_HOME"]) / "data").glob("ledger-sandbox.sqlite3*"):
            file.unlink()

    reference, outcome = json_refund_while_sending(sandbox, cli_env, delete_the_ledger)

    assert (outcome["exit_code"], outcome["code"]) == (3, "ledger_lost")
    assert outcome["trail"]["payment_reference"] == reference
    assert outcome["trail"]["tag"] in outcome["trail"]["body"]
    assert outcome["refund"]["amount_minor"] == 100


@pytest.mark.parametrize(
    ("phone_ending", "exit_code", "code", "status"),
    [
        ("9904", 4, "in_flight", "processing"),
        ("9901", 1, "failed", "failed"),
        ("9905", 1, "reversed", "reversed"),
        ("4567", 0, "completed", "completed"),
    ],
)
def test_status_of_one_refund_exits_by_its_state(sandbox, cli_env, phone_ending, exit_code, code, status):
    reference = sandbox.create_payment(
        **{**NOVASEND, "phone": NOVASEND["phone"][:-4] + phone_ending}
    )
    assert cli(cli_env, *refund_args(NOVASEND, reference, "100")).returncode == 0
    sandbox.advance(60)

    as_json = cli(cli_env, "status", reference, "--json")
    as_text = cli(cli_env, "status", reference)

    outcome = envelope(as_json)
    assert (outcome["exit_code"], outcome["code"]) == (exit_code, code)
    assert [row["status"] for row in outcome["refunds"]] == [status]
    assert as_text.returncode == exit_code
    header, row = as_text.stdout.strip().splitlines()
    assert header.split()[:3] == ["CREATED", "ATTEMPT", "PROVIDER"]
    assert status.upper() in row


def test_status_of_everything_has_a_header_and_exits_0(sandbox, cli_env):
    empty = cli(cli_env, "status", "--json")
    assert (envelope(empty)["code"], envelope(empty)["refunds"]) == ("listed", [])
    reference = sandbox.create_payment(**NOVASEND)
    assert cli(cli_env, *refund_args(NOVASEND, reference, "100")).returncode == 0

    listed = cli(cli_env, "status")

    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split()[:2] == ["CREATED", "ATTEMPT"]


def test_json_exit_0_listings(sandbox, cli_env):
    recovered = envelope(cli(cli_env, "recover", "--json"))
    notices = envelope(cli(cli_env, "webhooks", "list", "--json"))

    assert (recovered["code"], recovered["refunds"]) == ("nothing_to_recover", [])
    assert (notices["code"], notices["notifications"]) == ("listed", [])


# -- range checks: one line, exit 2, never a traceback ---------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("sandbox", "--port", "70000"),
        ("sandbox", "--port", "-1"),
        ("sandbox", "--settle-seconds", "inf"),
        ("sandbox", "--settle-seconds", "nan"),
        ("sandbox", "--settle-seconds", "0"),
        ("sandbox", "--settle-seconds", "1e300"),
        ("webhooks", "serve", "--port", "65536"),
        ("webhooks", "list", "--limit", "99999999999999999999"),
        ("status", "--limit", "-3"),
    ],
)
def test_numbers_out_of_range_are_one_line_exit_2(cli_env, argv):
    result = cli(cli_env, *argv, timeout=20)
    assert result.returncode == 2, result.stderr
    assert one_line(result).startswith("error: ")


def test_a_directory_or_a_fifo_as_state_is_refused(cli_env, tmp_path):
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    for state, words in ((tmp_path, "is a directory"), (fifo, "is not a regular file")):
        result = cli(cli_env, "sandbox", "--state", str(state), timeout=20)
        assert result.returncode == 2
        assert words in one_line(result)


def test_a_config_that_is_not_a_regular_file_is_refused(cli_env):
    config = Path(cli_env["REFUND_TUI_HOME"]) / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(config)  # reading it would wait forever

    result = cli(cli_env, "status", timeout=20)

    assert result.returncode == 2
    assert "not a regular file" in one_line(result)
