"""``refund-tui reconcile``: the providers' records against the ledger, finding by finding."""

from __future__ import annotations

import csv
import dataclasses
import sys
from datetime import datetime
from pathlib import Path

import click

from refund_tui.commands.output import Refused, print_outcome
from refund_tui.core.models import ProviderName
from refund_tui.core.reconcile import Finding, ReadProgress, Report, reconcile

CSV_COLUMNS = (
    "id", "kind", "provider", "payment_reference", "attempt_id", "ledger_reference",
    "ledger_amount", "ledger_status", "ledger_at", "provider_reference", "provider_amount",
    "provider_status", "provider_at", "currency", "detail", "acknowledged", "note",
)  # fmt: skip


async def run_reconcile(
    session, since: datetime | None, provider: str | None, as_json: bool, csv_path: Path | None
) -> int:
    """Read every touched payment's record; exit 0 when nothing is open, 1 otherwise."""
    progress = None if as_json else _progress
    report = await reconcile(
        session.service,
        since=since,
        provider=ProviderName(provider) if provider else None,
        concurrency=session.config.tracking_concurrency,
        on_progress=progress or (lambda _: None),
    )
    if progress and sys.stderr.isatty():
        click.echo("", err=True)
    if csv_path is not None:
        write_csv(csv_path, report.findings)
    exit_code = 1 if report.open_findings() or report.unreadable else 0
    if as_json:
        unread = len(report.unreadable)
        message = report.headline() + (f", {unread} records could not be read" if unread else "")
        print_outcome("findings" if exit_code else "clean", message, exit_code,
                      findings=[f.record() for f in report.findings], payments_checked=report.payments_checked,
                      unreadable=[{"provider": p.value, "payment_reference": ref, "reason": why}
                                  for p, ref, why in report.unreadable])  # fmt: skip
    else:
        _print(report)
        for provider_name, reference, why in report.unreadable:
            click.echo(f"not checked: {provider_name.value} {reference}: {why}", err=True)
    return exit_code


async def acknowledge(
    session, since: datetime | None, provider: str | None, finding_id: str, note: str, as_json: bool
) -> int:
    """Record a note on a finding that reconciling (the same period) still finds."""
    if not note.strip():
        raise Refused("say what you found: --note is required with --ack", code="note_required")
    report = await reconcile(
        session.service, since=since, provider=ProviderName(provider) if provider else None,
        concurrency=session.config.tracking_concurrency,
    )  # fmt: skip
    found = next((f for f in report.findings if f.finding_id == finding_id.strip().lower()), None)
    if found is None:
        raise Refused(f"no finding {finding_id[:20]!r} in this period: `refund-tui reconcile` lists them",
                      code="no_such_finding")
    ack = await session.service.db.acknowledge_finding(
        found.finding_id, kind=found.kind.value, provider=found.provider,
        payment_reference=found.payment_reference, note=note, operator=session.service.operator,
    )  # fmt: skip
    message = f"acknowledged {found.finding_id} ({found.kind.value}, {found.payment_reference}): {ack.note}"
    if as_json:
        print_outcome("acknowledged", message, 0, finding=dataclasses.replace(found, acknowledged=ack).record())
    else:
        click.echo(message)
    return 0


def _progress(progress: ReadProgress) -> None:
    line = f"reading payment records: {progress.done}/{progress.total}"
    if sys.stderr.isatty():
        click.echo(f"\r\x1b[2K{line}", nl=False, err=True)
    elif progress.done == progress.total or progress.done % 100 == 0:
        click.echo(line, err=True)


def _print(report: Report) -> None:
    for finding in report.findings:
        ack = f"  [acknowledged by {finding.acknowledged.operator}: {finding.acknowledged.note}]" if finding.acknowledged else ""
        click.echo(f"{finding.finding_id}  {finding.kind.value:<19}  {finding.provider.value:<8}  "
                   f"{finding.payment_reference}  {finding.detail}{ack}")  # fmt: skip
        for label, side in (("ledger", finding.ledger), ("provider", finding.at_provider)):
            if side is not None:
                when = f"{side.at:%Y-%m-%d %H:%M:%S} UTC" if side.at else "-"
                click.echo(f"    {label:<8} {side.reference or '-':<28} {side.amount.format():>16}  {side.status:<10} {when}")
    open_count = len(report.open_findings())
    click.echo(report.headline() + (f"; {report.updated} statuses brought up to date" if report.updated else ""))
    if open_count:
        click.echo("acknowledge one once looked into: refund-tui reconcile --ack ID --note \"what you found\"")


def write_csv(path: Path, findings: list[Finding]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for finding in findings:
            ledger, other = finding.ledger, finding.at_provider
            amount = (ledger or other).amount
            writer.writerow([
                finding.finding_id, finding.kind.value, finding.provider.value,
                finding.payment_reference, finding.attempt_id or "",
                *(_side(ledger)), *(_side(other)), amount.currency, finding.detail,
                finding.acknowledged.at.isoformat() if finding.acknowledged else "",
                finding.acknowledged.note if finding.acknowledged else "",
            ])  # fmt: skip


def _side(side) -> list[str]:
    if side is None:
        return ["", "", "", ""]
    return [side.reference or "", side.amount.plain(), side.status, side.at.isoformat() if side.at else ""]
