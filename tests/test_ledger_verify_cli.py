"""``refund-tui ledger verify`` and the audit export, as an operator runs them: exit codes,
one-line messages, a ledger file edited by hand, CSV cells a spreadsheet would run."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

from refund_tui.core.models import RefundStatus
from refund_tui.ledgers.sqlite import SqliteLedger
from tests.test_cli import NOVASEND, cli, refund_args


def ledger_file(env) -> Path:
    return Path(env["REFUND_TUI_HOME"]) / "data" / "ledger-sandbox.sqlite3"


def refunded(sandbox, env) -> str:
    reference = sandbox.create_payment(**NOVASEND)
    assert cli(env, *refund_args(NOVASEND, reference, "1000")).returncode == 0
    return reference


def test_verify_says_intact_then_names_the_event_edited_in_the_file(sandbox, cli_env):
    refunded(sandbox, cli_env)
    intact = cli(cli_env, "ledger", "verify")
    assert intact.returncode == 0, intact.stderr
    [line] = intact.stdout.splitlines()
    assert line.startswith("the ledger's chain is intact: ") and " records, newest link " in line
    with sqlite3.connect(ledger_file(cli_env)) as raw:  # the file's owner, with sqlite3
        raw.execute("DROP TRIGGER events_no_update")
        [(event_id, link)] = raw.execute("SELECT id, chain_seq FROM events ORDER BY id LIMIT 1 OFFSET 1").fetchall()
        raw.execute("UPDATE events SET status = 'failed' WHERE id = ?", (event_id,))

    broken = cli(cli_env, "ledger", "verify", "--profile", "sandbox")
    assert (broken.returncode, broken.stdout) == (1, "")
    assert broken.stderr.splitlines() == [
        f"refused: the chain breaks at event {event_id} (link {link}): its contents differ from what "
        "was recorded (changed after it was written)"
    ]
    as_json = cli(cli_env, "ledger", "verify", "--json")
    outcome = json.loads(as_json.stdout)
    assert (as_json.returncode, outcome["ok"], outcome["code"], outcome["exit_code"]) == (1, False, "chain_broken", 1)
    assert outcome["broken"] == {"link": link, "table": "events", "key": str(event_id), "event_id": event_id}


def test_verify_json_when_intact_and_a_refusal_without_a_ledger(sandbox, cli_env):
    missing = cli(cli_env, "ledger", "verify")
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1
    assert missing.stderr.startswith("refused: ")
    refunded(sandbox, cli_env)
    outcome = json.loads(cli(cli_env, "ledger", "verify", "--json").stdout)
    assert (outcome["ok"], outcome["code"], outcome["broken"]) == (True, "intact", None)
    assert outcome["records"] >= 3 and len(outcome["head"]) == 64
    unknown = cli(cli_env, "ledger", "verify", "--profile", "nosuch")
    assert unknown.returncode == 2


def test_export_carries_who_where_and_the_chain_and_never_starts_a_formula(sandbox, cli_env):
    refunded(sandbox, cli_env)
    with SqliteLedger(ledger_file(cli_env)) as ledger:
        [attempt] = ledger.attempts()
        ledger.add_event(attempt.attempt_id, attempt.status, "poll", note="=HYPERLINK(\"http://x\")")
        ledger.flag(attempt.attempt_id, "@SUM(A1:A9) -1 +1")
        verdict = ledger.verify_chain()
    rows = json.loads(cli(cli_env, "export", "--format", "json").stdout)
    assert rows[-1]["row_hash"] == verdict.head
    assert rows[-1]["note"] == "@SUM(A1:A9) -1 +1"  # JSON keeps the value exactly
    for row in rows:
        assert row["client_account"] and row["client_host"] and row["recorded_by"] == row["client_account"]
        assert row["outcome"] == "recorded" and row["chain_seq"] and len(row["prev_hash"]) == 64
    exported = cli(cli_env, "export", "--format", "csv").stdout
    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    assert "'=HYPERLINK(\"http://x\")" in cells and "'@SUM(A1:A9) -1 +1" in cells
    assert "'" + attempt.phone in cells  # a phone number's + would start a formula too
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert RefundStatus(rows[0]["status"]) is RefundStatus.PENDING
