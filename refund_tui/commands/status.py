"""``status``, ``recover`` and ``export``: the ledger seen from a script or a runbook."""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from contextlib import closing
from datetime import datetime
from typing import TextIO

import click

from refund_tui.commands.output import ATTEMPT_HEADER, Refused, attempt_line, attempt_record, print_outcome
from refund_tui.core.ledger import AUDIT_FIELDS, Attempt, LedgerError
from refund_tui.core.models import RefundStatus
from refund_tui.core.text import printable
from refund_tui.ledgers import open_ledger

WATCH_INTERVAL = 2.0


def _select(session, reference: str | None, limit: int) -> list[Attempt]:
    ledger = session.ledger
    if reference is None:
        return ledger.attempts(limit=limit)
    try:
        return [ledger.get(reference)]
    except KeyError:
        pass
    attempts = ledger.attempts(payment_reference=reference, limit=limit)
    if not attempts:
        raise Refused(f"no refund in the ledger matches {reference!r}", code="not_found")
    return attempts


def _verdict(attempts: list[Attempt]) -> tuple[int, str]:
    """Exit code and code of ``status REF``: the most urgent state among its refunds."""
    statuses = {attempt.status for attempt in attempts}
    if RefundStatus.UNKNOWN in statuses:
        return 3, "outcome_unknown"
    if not all(status.is_terminal for status in statuses):
        return 4, "in_flight"
    for status in (RefundStatus.FAILED, RefundStatus.REVERSED, RefundStatus.DENIED, RefundStatus.CANCELLED):
        if status in statuses:
            return 1, status.value
    return 0, "completed"


def _counts(attempts: list[Attempt]) -> str:
    counts = Counter(attempt.status.value for attempt in attempts)
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def _print_table(attempts: list[Attempt]) -> None:
    click.echo(ATTEMPT_HEADER)
    for attempt in attempts:
        click.echo(attempt_line(attempt))


async def show_status(session, reference: str | None, watch: bool, limit: int, as_json: bool) -> int:
    """Poll the in-flight refunds, then print; with ``watch``, until all shown are final.

    With ``reference`` the exit code says where its refunds stand (see ``_verdict``).
    """
    while True:
        await session.service.track(force=True)
        attempts = _select(session, reference, limit)
        if not watch or all(attempt.status.is_terminal for attempt in attempts):
            break
        if not as_json:
            click.echo(f"-- {len(attempts)} refunds, {sum(not a.status.is_terminal for a in attempts)} in flight")
            _print_table(attempts)
        await asyncio.sleep(WATCH_INTERVAL)
    if reference is None:
        exit_code, code = 0, "listed"
        message = f"{len(attempts)} refunds: {_counts(attempts)}" if attempts else "no refunds in the ledger yet"
    else:
        exit_code, code = _verdict(attempts)
        message = f"{reference}: {_counts(attempts)}"
    if as_json:
        print_outcome(code, message, exit_code, refunds=[attempt_record(attempt) for attempt in attempts])
    elif not attempts:
        click.echo(message)
    else:
        _print_table(attempts)
    return exit_code


async def run_recovery(session, as_json: bool) -> int:
    """Resolve pending/unknown attempts; exit 3 while any outcome is still not known."""
    results = await session.service.recover()
    open_ended = [
        r for r in results
        if r.attempt.status is RefundStatus.UNKNOWN
        or (not r.attempt.status.is_terminal and r.attempt.provider_reference is None)
        or r.outcome.startswith("error:")
    ]  # fmt: skip
    exit_code = 3 if open_ended else 0
    if not results:
        code, message = "nothing_to_recover", "nothing to recover: no pending or unknown refund attempts"
    else:
        code = "outcome_unknown" if open_ended else "recovered"
        message = f"{len(results)} attempts checked, {len(open_ended)} still of unknown outcome"
    if as_json:
        print_outcome(code, message, exit_code,
                      refunds=[{**attempt_record(r.attempt), "outcome": r.outcome} for r in results])
        return exit_code
    if results:
        click.echo(ATTEMPT_HEADER)
    for result in results:
        click.echo(f"{attempt_line(result.attempt)}\n    -> {printable(result.outcome)}")
    click.echo(message)
    return exit_code


def write_export(fmt: str, since: datetime | None, output: TextIO, profile: str | None) -> None:
    """The audit trail of one profile: one row per event (status change, claim, flag,
    decision) joined with its attempt, with who recorded it, from where, and its link in the
    hash chain (``AUDIT_FIELDS``). JSON keeps every character exactly (escaped, ASCII only);
    CSV values are ``printable`` and never start a spreadsheet formula."""
    from refund_tui.config import ConfigError, load_config

    try:
        with closing(open_ledger(load_config().profile(profile), create=False)) as ledger:
            rows = list(ledger.audit_rows(since))
    except (ConfigError, LedgerError) as error:
        raise Refused(str(error)) from None
    if fmt == "json":
        output.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    writer = csv.DictWriter(output, fieldnames=AUDIT_FIELDS)
    writer.writeheader()
    writer.writerows({name: _cell(value) for name, value in row.items()} for row in rows)


#: What a spreadsheet reads as the start of a formula (OWASP; tab and CR are made spaces).
_FORMULA_STARTS = ("=", "+", "-", "@")


def _cell(value: object) -> object:
    """A CSV value as a terminal or spreadsheet may show it: text is made printable, and text
    a spreadsheet would run as a formula is quoted with a leading ' (JSON export keeps every
    character, escaped)."""
    if not isinstance(value, str):
        return value
    shown = printable(value)
    return "'" + shown if shown.lstrip().startswith(_FORMULA_STARTS) else shown
