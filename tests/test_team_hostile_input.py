"""Hostile input to the team ledger's commands (review): weird attempt ids, control
characters and huge texts give one readable line and exit 1 or 2, never a traceback, never a
raw escape on the terminal, and change nothing that should not change."""

from __future__ import annotations

from tests.test_team_approvals import outcome, team  # noqa: F401 (fixture)
from tests.test_team_ledger import PAYMENTS, refund_args

ESCAPE = "\x1b]0;owned\x07\x1b[2J"
#: Every command looks the id up the same way (``Ledger.get``): the escape and the huge id
#: for each, the rest once (approve).
HOSTILE_IDS = (ESCAPE, "x" * 50_000)
MORE_IDS = ("-", "%", "' OR 1=1 --", "\u202eabc", "   ")


def _clean(result) -> None:
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr and "\x1b" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_weird_attempt_ids_are_refused_in_one_line(team):
    for command, *extra in (["approve", "--yes"], ["deny", "--reason", "x"], ["cancel"], ["claim"], ["note", "t"]):
        for key in HOSTILE_IDS + (MORE_IDS if command == "approve" else ()):
            _clean(team.run("approver", command, key, *extra))


def test_a_hostile_denial_reason_and_note_are_kept_and_shown_harmlessly(team, sandbox):
    reference = sandbox.create_payment(**PAYMENTS["novasend"])
    asked = team.run("operator", *refund_args("novasend", reference, "6000"), "--json")
    attempt_id = outcome(asked)["refund"]["attempt_id"]
    _clean(team.run("operator", "note", attempt_id, "n" * 20_000))  # too long: one line, exit 2
    note = team.run("operator", "note", attempt_id, ESCAPE + "n" * 1_500)
    assert note.returncode == 0 and "\x1b" not in note.stdout + note.stderr, note.stderr
    denied = team.run("approver", "deny", attempt_id, "--reason", ESCAPE + "r" * 20_000)
    assert denied.returncode == 0 and "\x1b" not in denied.stdout + denied.stderr, denied.stderr
    shown = team.run("operator", "status", attempt_id)
    assert "DENIED" in shown.stdout and "\x1b" not in shown.stdout + shown.stderr
    _clean(team.run("operator", "cancel", attempt_id))  # denied: nothing to cancel
