"""``refund-tui batch``: 200 rows, 7 of them bad, through real processes and real HTTP; the
simulator counts what it executed (``GET /_sandbox/refunds``)."""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tests.clock import faked, needs_faketime
from tests.test_cli import cli, ledger_attempts

ROWS = 200
#: Row number -> what is wrong with it (each kind the issue names once, the last one twice).
BAD_ROWS = {
    9: "over the refundable balance",
    42: "over the refundable balance: max",  # fits alone, not after row 41 (same payment)
    77: "phone: a landline",
    101: "GHS allows at most 2 decimals",
    133: "has no payment with reference",
    150: "provider: 'paystack' is not a provider",
    188: "reason: a reason is required",
}


def write_batch(sandbox, path: Path, *, delimiter: str = ",", bom: bool = False) -> list[str]:
    """A 200-row file over 100 fresh payments (two rows each), the BAD_ROWS spoilt as named;
    returns the payment references it refunds."""
    references, rows = [], []
    for index in range(ROWS // 2):
        if index % 2:
            payment = dict(provider="novasend", amount=20000, currency="XOF", phone="+2250701234567")
            amounts = ("5000", "3000")
        else:
            payment = dict(provider="vesicash", amount=300, currency="GHS", phone="+233241234567")
            amounts = ("100", "50.50")
        reference = sandbox.create_payment(**payment)
        references.append(reference)
        for amount in amounts:
            rows.append({"provider": payment["provider"], "payment": reference, "amount": amount,
                         "reason": f"Refund {len(rows) + 1}", "phone": ""})  # fmt: skip
    spoil = {
        9: {"amount": "301"},
        41: {"amount": "200"},
        42: {"amount": "150"},
        77: {"phone": "0302123456"},
        101: {"amount": "1.005"},
        133: {"payment": "VSC-NO-SUCH-PAYMENT"},
        150: {"provider": "paystack"},
        188: {"reason": "  "},
    }
    for row, changes in spoil.items():
        rows[row - 1].update(changes)
    assert {rows[row - 1]["provider"] for row in (9, 41, 42, 77, 101, 133)} == {"vesicash"}
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return references


def good_totals(path: Path) -> dict[str, str]:
    """What the good rows of the file add up to, per currency, as the dry run writes it."""
    totals = {"GHS": Decimal(0), "XOF": Decimal(0)}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for row, line in enumerate(csv.DictReader(handle), start=1):
            if row not in BAD_ROWS:
                totals["GHS" if line["provider"] == "vesicash" else "XOF"] += Decimal(line["amount"])
    return {"GHS": f"{totals['GHS']:.2f}", "XOF": f"{totals['XOF']:.0f}"}


def executed(sandbox, references: list[str]) -> Counter:
    """Executed refunds per payment reference of the batch."""
    wanted = set(references)
    return Counter(r["payment_reference"] for r in sandbox.refunds() if r["payment_reference"] in wanted)


@pytest.fixture
def batch_file(sandbox, tmp_path) -> tuple[Path, list[str]]:
    path = tmp_path / "refunds.csv"
    return path, write_batch(sandbox, path)


def test_dry_run_lists_exactly_the_bad_rows_with_their_reasons_and_sends_nothing(
    sandbox, cli_env, batch_file
):
    path, references = batch_file

    result = cli(cli_env, "batch", str(path), "--dry-run", "--json")

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert {"rows", "valid", "invalid", "totals"} <= set(report)  # beside ok, code, message, exit_code
    assert (report["ok"], report["code"], report["exit_code"]) == (False, "rows_refused", 1)
    assert (report["rows"], report["valid"]) == (ROWS, ROWS - len(BAD_ROWS))
    assert [problem["row"] for problem in report["invalid"]] == sorted(BAD_ROWS)
    for problem in report["invalid"]:
        assert BAD_ROWS[problem["row"]] in problem["reason"], problem
    assert "once row 41 of this file is counted (same payment)" in report["invalid"][1]["reason"]
    assert report["totals"] == good_totals(path)
    assert sum(executed(sandbox, references).values()) == 0
    assert ledger_attempts(cli_env) == 0


def test_the_run_sends_every_good_row_once_and_a_second_run_sends_nothing(sandbox, cli_env, batch_file):
    path, references = batch_file

    first = cli(cli_env, "batch", str(path), "--yes", "--json")

    assert first.returncode == 1, first.stderr  # rows were skipped
    report = json.loads(first.stdout)
    assert (report["rows"], report["sent"], report["already_sent"]) == (ROWS, ROWS - 7, 0)
    assert [skipped["row"] for skipped in report["skipped"]] == sorted(BAD_ROWS)
    assert sum(executed(sandbox, references).values()) == ROWS - 7
    with open(report["results"], newline="", encoding="utf-8") as handle:
        results = list(csv.DictReader(handle))
    assert [int(line["row"]) for line in results] == list(range(1, ROWS + 1))
    sent = [line for line in results if line["status"] != "skipped"]
    assert len(sent) == ROWS - 7 and all(line["attempt"] and line["provider_reference"] for line in sent)
    executed_references = {r["refund_reference"] for r in sandbox.refunds()}
    assert {line["provider_reference"] for line in sent} <= executed_references

    again = cli(cli_env, "batch", str(path), "--yes", "--json")

    report = json.loads(again.stdout)
    assert (report["sent"], report["already_sent"]) == (0, ROWS - 7), again.stderr
    assert sum(executed(sandbox, references).values()) == ROWS - 7
    assert max(executed(sandbox, references).values()) <= 2


def test_the_same_rows_saved_with_semicolons_and_a_bom_are_the_same_batch(sandbox, cli_env, tmp_path):
    comma, semicolon = tmp_path / "comma.csv", tmp_path / "semicolon.csv"
    references = write_batch(sandbox, comma)
    rows = list(csv.reader(comma.open(newline="", encoding="utf-8")))
    with open(semicolon, "w", newline="", encoding="utf-8-sig") as handle:
        csv.writer(handle, delimiter=";", lineterminator="\r\n").writerows(rows)

    assert cli(cli_env, "batch", str(comma), "--yes", "--json").returncode == 1
    again = cli(cli_env, "batch", str(semicolon), "--yes", "--json")

    assert json.loads(again.stdout)["already_sent"] == ROWS - 7, again.stderr
    assert sum(executed(sandbox, references).values()) == ROWS - 7


@needs_faketime
def test_sigkill_at_random_points_then_rerun_still_executes_exactly_the_good_rows(sandbox, cli_env, batch_file):
    """Three runs killed after a random number of intents, then full runs. A Vesicash row
    whose request may never have left is never resent on its own: each of the 193 good rows
    is executed once, or provably not executed and waiting for an operator's resend (with the
    rows of its payment). ``--resend-unknown`` refuses them inside the quiet period (one
    minute here: the sandbox's 10 s timeout allows it) and resends them after it, with the
    rest of the file: exactly 193, none twice. The minute is passed with libfaketime (+65 s,
    inside the 2 minutes the clock check tolerates against the provider's Date) rather than
    slept."""
    path, references = batch_file
    config = Path(cli_env["REFUND_TUI_HOME"]) / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[recovery]\nresend_quiet_minutes = 1\n")
    sandbox.faults(latency_ms=40)
    chance = random.Random(13)
    for _ in range(3):
        batch = subprocess.Popen(
            [sys.executable, "-m", "refund_tui", "batch", str(path), "--yes", "--json"],
            env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        target = ledger_attempts(cli_env) + chance.randint(5, 40)
        deadline = time.monotonic() + 60
        while ledger_attempts(cli_env) < target and batch.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        batch.send_signal(signal.SIGKILL)
        batch.wait()
    time.sleep(0.2)  # requests the killed runs left in flight reach the simulator
    assert sum(executed(sandbox, references).values()) < ROWS - 7

    runs = [json.loads(cli(cli_env, "batch", str(path), "--yes", "--json").stdout)]
    while runs[-1]["sent"] and len(runs) < 4:  # a row that waited for its payment's earlier row
        runs.append(json.loads(cli(cli_env, "batch", str(path), "--yes", "--json").stdout))

    last = runs[-1]
    assert last["sent"] == 0 and set(BAD_ROWS) <= {s["row"] for s in last["skipped"]}
    with open(last["results"], newline="", encoding="utf-8") as handle:
        results = list(csv.DictReader(handle))
    waiting = [line for line in results if line["status"] == "unknown"]
    blocked = [s for s in last["skipped"] if s["row"] not in BAD_ROWS]
    assert all(line["provider"] == "vesicash" and not line["provider_reference"] for line in waiting)
    assert all("no known outcome" in s["reason"] for s in blocked), blocked
    moved = {line["provider_reference"] for line in results if line["provider_reference"]}
    assert moved == {r["refund_reference"] for r in sandbox.refunds() if r["payment_reference"] in set(references)}
    assert len(moved) + len(waiting) + len(blocked) == ROWS - 7  # each good row: once, or waiting
    assert waiting, "no kill left a Vesicash row unknown: the resend path was not exercised"

    dry = json.loads(cli(cli_env, "batch", str(path), "--dry-run", "--json", "--resend-unknown").stdout)
    assert sorted(r["row"] for r in dry["unknown"]) == [int(line["row"]) for line in waiting]
    assert all("may still be executing" in r["reason"] for r in dry["unknown"])
    early = cli(cli_env, "batch", str(path), "--yes", "--json", "--resend-unknown")
    early_report = json.loads(early.stdout)
    assert (early.returncode, early_report["sent"], early_report["resent"]) == (3, 0, []), early.stderr
    assert {r["row"] for r in early_report["not_resent"]} == {int(line["row"]) for line in waiting}
    assert all("may still be executing" in r["reason"] and r["resend_from"] for r in early_report["not_resent"])
    assert sum(executed(sandbox, references).values()) == len(moved)

    after_quiet = run_faked(cli_env, "+65", "batch", str(path), "--yes", "--json", "--resend-unknown")
    rerun = json.loads(cli(cli_env, "batch", str(path), "--yes", "--json").stdout)

    report = json.loads(after_quiet.stdout)
    assert sorted(r["row"] for r in report["resent"]) == [int(line["row"]) for line in waiting], after_quiet.stderr
    assert (report["sent"], report["not_resent"]) == (len(blocked), [])
    assert (rerun["sent"], rerun["already_sent"]) == (0, ROWS - 7)
    counts = executed(sandbox, references)
    assert sum(counts.values()) == ROWS - 7
    assert counts == good_rows_per_payment(path)  # none twice


def good_rows_per_payment(path: Path) -> Counter:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        lines = enumerate(csv.DictReader(handle), start=1)
        return Counter(line["payment"] for row, line in lines if row not in BAD_ROWS)


def run_faked(env: dict[str, str], offset: str, *args: str) -> subprocess.CompletedProcess:
    """``refund-tui ARGS`` with its clock ``offset`` seconds ahead (libfaketime)."""
    command = faked(offset, sys.executable, "-m", "refund_tui", *args)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_a_file_that_is_not_a_batch_is_refused_in_one_line(cli_env, tmp_path):
    garbled = tmp_path / "export.csv"
    garbled.write_bytes(b"provider,payment,amount,reason\n\xff\xfe")

    refused = cli(cli_env, "batch", str(garbled), "--dry-run")
    missing = cli(cli_env, "batch", str(tmp_path / "none.csv"), "--yes")

    assert refused.returncode == 1
    assert refused.stderr.splitlines() == ["refused: export.csv is not UTF-8 (line 2, byte 31): save it as CSV UTF-8"]
    assert missing.returncode == 1
    assert missing.stderr.startswith("refused: cannot read") and "Traceback" not in missing.stderr


def test_a_json_run_never_asks_it_needs_yes(sandbox, cli_env, batch_file):
    path, references = batch_file

    asked = cli(cli_env, "batch", str(path), "--json")

    assert asked.returncode == 2
    assert json.loads(asked.stdout)["code"] == "confirmation_required"
    assert sum(executed(sandbox, references).values()) == 0


@needs_faketime
def test_resend_unknown_lists_the_evidence_and_resends_only_on_the_operators_yes(sandbox, cli_env, tmp_path):
    """A 500 leaves the only row unknown (nothing executed). After the quiet period the run
    lists the row with its evidence and asks; "n" sends nothing, "y" resends it once."""
    config = Path(cli_env["REFUND_TUI_HOME"]) / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[recovery]\nresend_quiet_minutes = 1\n")
    reference = sandbox.create_payment("vesicash", 300, "GHS", "+233241234567")
    path = tmp_path / "refunds.csv"
    path.write_text(f"provider,payment,amount,reason\nvesicash,{reference},100,Late\n")
    sandbox.faults(fail_refunds_next=1)
    assert cli(cli_env, "batch", str(path), "--yes", "--json").returncode == 3

    def asked(answer: str) -> subprocess.CompletedProcess:
        command = faked("+65", sys.executable, "-m", "refund_tui", "batch", str(path), "--resend-unknown")
        return subprocess.run(command, env=cli_env, input=answer, capture_output=True, text=True, timeout=120)

    declined = asked("n\n")
    assert declined.returncode == 1 and "not confirmed: nothing was sent" in declined.stderr
    assert "1 row of unknown outcome at Vesicash (never resent on its own); 1 pass" in declined.stdout
    assert "none tagged [rtui-" in declined.stdout and "row 1 (" in declined.stdout
    assert "Resend 1 Vesicash refunds of unknown outcome (100.00 GHS)?" in declined.stderr
    assert executed(sandbox, [reference]) == Counter()

    accepted = asked("y\n")

    assert accepted.returncode == 0, accepted.stderr
    assert "row 1: resent on the operator's decision" in accepted.stdout
    assert executed(sandbox, [reference]) == Counter({reference: 1})
