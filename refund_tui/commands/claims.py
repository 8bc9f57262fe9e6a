"""``claim``, ``release`` and ``note``: triage as a team from a shell or a runbook.

They need the ledger only (no provider, no credentials). Who did it is what the ledger records:
the database role on a team ledger (set by the database), with the OS account, host and SSH
client this process reports.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from datetime import UTC
from typing import TypeVar

import click

from refund_tui.commands.output import Misuse, Refused, print_outcome
from refund_tui.core.ledger import Attempt, AttemptNotFound, ClaimHeld, Ledger, LedgerError, TriageEntry
from refund_tui.core.operator import Operator
from refund_tui.core.text import printable

T = TypeVar("T")


def _on_attempt(profile_name: str, key: str, work: Callable[[Ledger, Attempt], T]) -> T:
    """Open the profile's ledger, find the attempt (id, id prefix or provider reference), run
    ``work``; every ledger problem is one refusal."""
    from refund_tui.config import ConfigError, load_config
    from refund_tui.ledgers import open_ledger

    try:
        ledger = open_ledger(load_config().profile(profile_name), create=False)
    except ConfigError as error:
        raise Misuse(str(error), code="config_error") from None
    except LedgerError as error:
        raise Refused(str(error), code="ledger_error") from None
    with closing(ledger):
        try:
            return work(ledger, ledger.get(key))
        except AttemptNotFound as error:
            raise Refused(str(error), code="not_found") from None
        except ClaimHeld as held:
            raise Refused(f"{held} (add --take-over to take it over)", code="claimed") from None
        except LedgerError as error:
            raise Refused(str(error), code="ledger_error") from None


def entry_record(entry: TriageEntry) -> dict[str, object]:
    """A claim, release or note as plain data for ``--json`` output."""
    return {
        "attempt_id": entry.attempt_id,
        "action": entry.action.value,
        "at": entry.at.isoformat(),
        "who": entry.who,
        "recorded_by": entry.recorded_by,
        "operator": entry.operator.name,
        "hostname": entry.operator.hostname,
        "ssh_client": entry.operator.ssh_client,
        "note": entry.note,
        "took_over": entry.took_over,
    }


def _report(code: str, message: str, entry: TriageEntry | None, as_json: bool) -> int:
    if as_json:
        print_outcome(code, message, 0, entry=entry_record(entry) if entry else None)
    else:
        click.echo(printable(message))
    return 0


def _about(attempt: Attempt) -> str:
    return f"refund {attempt.attempt_id[:8]} of {attempt.payment_reference}"


def claim_attempt(profile_name: str, key: str, take_over: bool, as_json: bool) -> int:
    def work(ledger: Ledger, attempt: Attempt) -> int:
        entry = ledger.claim(attempt.attempt_id, Operator.current(), take_over=take_over)
        over = f", taken over from {entry.took_over}" if entry.took_over else ""
        since = f"{entry.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        return _report("claimed", f"{entry.who} is on {_about(attempt)} since {since}{over}", entry, as_json)

    return _on_attempt(profile_name, key, work)


def release_attempt(profile_name: str, key: str, take_over: bool, as_json: bool) -> int:
    def work(ledger: Ledger, attempt: Attempt) -> int:
        entry = ledger.release(attempt.attempt_id, Operator.current(), take_over=take_over)
        if entry is None:
            return _report("not_claimed", f"nobody was on {_about(attempt)}", None, as_json)
        over = f" (it was {entry.took_over}'s)" if entry.took_over else ""
        return _report("released", f"nobody is on {_about(attempt)} now{over}", entry, as_json)

    return _on_attempt(profile_name, key, work)


def note_attempt(profile_name: str, key: str, text: str, as_json: bool) -> int:
    def work(ledger: Ledger, attempt: Attempt) -> int:
        try:
            entry = ledger.add_note(attempt.attempt_id, text, Operator.current())
        except ValueError as error:
            raise Misuse(str(error), code="bad_note") from None
        return _report("noted", f"note kept on {_about(attempt)}", entry, as_json)

    return _on_attempt(profile_name, key, work)
