"""``refund-tui claim / release / note`` as scripts use them, on the profile's ledger: the JSON
contract (ok, code, message, exit_code); claims and notes in the export. The command runs in
this process (``tests/test_cli.py`` runs the rest as real processes), to keep the test quick."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from refund_tui.ledgers.sqlite import SqliteLedger
import pytest

from tests.inprocess import run_cli
from tests.ledger.factories import record
from tests.test_tui_claims import KOFI

HOSTILE = "wallet \x1b]0;owned\x07closed\x1b[2J\u202e"


@pytest.fixture
def cli(capsys):
    return lambda env, *args: run_cli(capsys, env, *args)


def kofis_claim(env) -> str:
    """An attempt on the profile's ledger that kofi (another OS account) is on."""
    with SqliteLedger(Path(env["REFUND_TUI_HOME"]) / "data" / "ledger-sandbox.sqlite3") as ledger:
        attempt_id = record(ledger, 500)
        ledger.claim(attempt_id, KOFI)
    return attempt_id


def outcome(result) -> dict:
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


def test_claim_take_over_release_and_note_from_the_command_line(sandbox, cli_env, cli):
    attempt_id = kofis_claim(cli_env)
    short = attempt_id[:8]

    held = outcome(cli(cli_env, "claim", short, "--json"))
    assert (held["ok"], held["code"], held["exit_code"]) == (False, "claimed", 1)
    assert held["message"].startswith(f"kofi has been on refund {short} since ")
    assert held["message"].endswith("(add --take-over to take it over)")
    refused = cli(cli_env, "release", short)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith("refused: kofi has been on refund")

    taken = outcome(cli(cli_env, "claim", short, "--take-over", "--json"))
    assert (taken["ok"], taken["code"], taken["exit_code"]) == (True, "claimed", 0)
    me = taken["entry"]["who"]
    assert taken["entry"]["took_over"] == "kofi" and taken["entry"]["attempt_id"] == attempt_id
    assert taken["message"].endswith(", taken over from kofi")

    released = cli(cli_env, "release", attempt_id)
    assert (released.returncode, released.stdout.strip()) == (0, f"nobody is on refund {short} of tr_1 now")
    again = outcome(cli(cli_env, "release", short, "--json"))
    assert (again["code"], again["exit_code"], again["entry"]) == ("not_claimed", 0, None)

    noted = cli(cli_env, "note", short, HOSTILE)
    assert (noted.returncode, noted.stdout.strip()) == (0, f"note kept on refund {short} of tr_1")
    blank = outcome(cli(cli_env, "note", short, "   ", "--json"))
    assert (blank["code"], blank["exit_code"]) == ("bad_note", 2)
    missing = outcome(cli(cli_env, "note", "no-such-refund", "hello", "--json"))
    assert (missing["code"], missing["exit_code"]) == ("not_found", 1)

    exported = cli(cli_env, "export", "--format", "json")
    rows = [row for row in json.loads(exported.stdout) if row["source"] != "intent"]
    assert [(row["source"], row["note"], row["client_account"]) for row in rows] == [
        ("claim", None, "kofi"), ("claim", "took over from kofi", me), ("release", None, me),
        ("note", HOSTILE, me),
    ]  # fmt: skip
    as_csv = list(csv.DictReader(io.StringIO(cli(cli_env, "export").stdout)))
    assert as_csv[-1]["source"] == "note" and as_csv[-1]["note"] == "wallet closed"
