"""``status``, ``recover`` and ``export``: the ledger seen from a script or a runbook."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import datetime
from typing import TextIO

import click

from refund_tui.commands.output import Refused, attempt_line, attempt_record, print_json
from refund_tui.core.ledger import AUDIT_FIELDS, Attempt, LedgerError
from refund_tui.core.models import RefundStatus

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
        raise Refused(f"no refund in the ledger matches {reference!r}")
    return attempts


async def show_status(session, reference: str | None, watch: bool, limit: int, as_json: bool) -> int:
    """Poll the in-flight refunds, then print; with ``watch``, until all shown are final."""
    while True:
        await session.service.track(force=True)
        attempts = _select(session, reference, limit)
        if not watch or all(attempt.status.is_terminal for attempt in attempts):
            break
        if not as_json:
            click.echo(f"-- {len(attempts)} refunds, {sum(not a.status.is_terminal for a in attempts)} in flight")
            for attempt in attempts:
                click.echo(attempt_line(attempt))
        await asyncio.sleep(WATCH_INTERVAL)
    if as_json:
        print_json([attempt_record(attempt) for attempt in attempts])
    elif not attempts:
        click.echo("no refunds in the ledger yet")
    else:
        for attempt in attempts:
            click.echo(attempt_line(attempt))
    return 0


async def run_recovery(session, as_json: bool) -> int:
    """Resolve pending/unknown attempts; exit 3 while any outcome is still not known."""
    results = await session.service.recover()
    if as_json:
        print_json([{**attempt_record(r.attempt), "outcome": r.outcome} for r in results])
    elif not results:
        click.echo("nothing to recover: no pending or unknown refund attempts")
    for result in results if not as_json else ():
        click.echo(f"{attempt_line(result.attempt)}\n    -> {result.outcome}")
    open_ended = [
        r for r in results
        if r.attempt.status is RefundStatus.UNKNOWN
        or (not r.attempt.status.is_terminal and r.attempt.provider_reference is None)
        or r.outcome.startswith("error:")
    ]  # fmt: skip
    return 3 if open_ended else 0


def write_export(fmt: str, since: datetime | None, output: TextIO, profile: str | None) -> None:
    """The audit trail of one profile: one row per status change, joined with its attempt."""
    from refund_tui.config import ConfigError, load_config
    from refund_tui.ledger_registry import open_profile_ledger

    try:
        name = load_config().profile(profile).name
        with open_profile_ledger(name, create=False) as ledger:
            rows = list(ledger.audit_rows(since))
    except (ConfigError, LedgerError) as error:
        raise Refused(str(error)) from None
    if fmt == "json":
        output.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    writer = csv.DictWriter(output, fieldnames=AUDIT_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
