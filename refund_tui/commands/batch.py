"""``refund-tui batch FILE.csv``: check every row first, confirm, send each row once,
write ``FILE.results.csv``."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from refund_tui.commands.output import Refused, print_outcome
from refund_tui.commands.refund import unknown_outcome
from refund_tui.core.batch import (
    BatchFileError,
    BatchPlan,
    BatchRun,
    Progress,
    RowResult,
    UnknownRow,
    plan_batch,
    read_batch,
    resend_rows,
    run_batch,
    unknown_rows,
    write_results,
)
from refund_tui.core.service import TrailLost
from refund_tui.core.triage import totals
from refund_tui.core.models import RefundStatus

#: Seconds between progress lines when stderr is not a terminal.
LOG_EVERY = 2.0


@dataclass(frozen=True)
class BatchCommand:
    path: Path
    dry_run: bool
    yes: bool
    as_json: bool
    concurrency: int
    resend_unknown: bool = False

    async def run(self, session) -> int:
        try:
            batch = read_batch(self.path)
        except BatchFileError as error:
            raise Refused(str(error), code="invalid_file") from None
        if not self.as_json:
            click.echo(f"checking {len(batch.lines)} rows of {self.path.name} ...", err=True)
        plan = await plan_batch(session.service, batch, self.concurrency)
        unknown, resent = [], []
        if self.resend_unknown:
            unknown = await unknown_rows(session.service, plan, self.concurrency)
            self._show_unknown(unknown)
            if not self.dry_run and any(row.resendable for row in unknown):
                try:
                    resent = await self._resend(session, [row for row in unknown if row.resendable])
                except TrailLost as lost:
                    return unknown_outcome(lost, self.as_json)
                plan = await plan_batch(session.service, batch, self.concurrency)  # their payments' rows
        if self.dry_run:
            self._show_plan(plan, session, dry_run=True, unknown=unknown)
            return 1 if plan.invalid else 0
        if not self.as_json:
            self._show_plan(plan, session, dry_run=False)
        if plan.ready and not self.yes:
            _confirm(plan, live=session.profile.is_live)
        progress = None if self.as_json else ProgressLine()
        run = await run_batch(
            session.service, plan, concurrency=self.concurrency,
            on_progress=progress.show if progress else lambda _: None,
        )  # fmt: skip
        if progress:
            progress.close()
        write_results(batch.results_path, plan, run)
        if run.trail_lost is not None:
            return unknown_outcome(run.trail_lost, self.as_json)
        return self._report(plan, run, unknown, resent)

    def _show_unknown(self, unknown: list[UnknownRow]) -> None:
        """Each Vesicash row of unknown outcome: resendable now, or why not and from when."""
        if self.as_json or not unknown:
            return
        ready = sum(row.resendable for row in unknown)
        click.echo(f"{_rows(len(unknown))} of unknown outcome at Vesicash (never resent on its own); "
                   f"{ready} pass the checks of `refund-tui resend`:")  # fmt: skip
        for row in unknown:
            evidence = row.evidence
            verdict = "resend allowed" if row.resendable else f"not resent: {evidence.refusal}"
            click.echo(f"  row {row.row} ({evidence.attempt.attempt_id[:8]}, "
                       f"{evidence.attempt.amount.format()}): {verdict}")  # fmt: skip
            for line in evidence.lines():
                click.echo(f"      {line}")

    async def _resend(self, session, rows: list[UnknownRow]) -> list[RowResult]:
        """The operator's decision (typed on a live profile), then each row resent once."""
        if not self.yes:
            attempts = [row.evidence.attempt for row in rows]
            _ask(
                f"{len(rows)} Vesicash refunds of unknown outcome",
                ", ".join(money.format() for money in totals(attempts).values()),
                "resend",
                live=session.profile.is_live,
                warning="A resend pays twice if a first request still executes. ",
            )
        results = await resend_rows(session.service, rows)
        if not self.as_json:
            for result in results:
                click.echo(f"  row {result.row}: {result.detail}")
        return results

    def _show_plan(self, plan: BatchPlan, session, *, dry_run: bool, unknown: list[UnknownRow] = ()) -> None:
        totals = {currency: money.plain() for currency, money in plan.totals().items()}
        if self.as_json:
            invalid = [{"row": problem.row, "reason": problem.reason} for problem in plan.invalid]
            code, message = ("rows_refused", f"{len(invalid)} rows refused") if invalid else ("checked", "every row is valid")
            repeats = [{"row": repeat.row, "warning": repeat.reason} for repeat in plan.repeats]
            extra = {"unknown": [_unknown(row) for row in unknown]} if self.resend_unknown else {}
            print_outcome(code, f"dry run: {message}; nothing was sent", 1 if invalid else 0,
                          rows=len(plan.file.lines), valid=len(plan.ready), invalid=invalid, totals=totals,
                          repeats=repeats, **extra)  # fmt: skip
            return
        profile = f"{session.profile.name} ({session.profile.environment.upper()})"
        click.echo(f"batch {plan.file.path.name}: {_rows(len(plan.file.lines))}, profile {profile}")
        if plan.recorded:
            click.echo(f"  {_rows(len(plan.recorded))} sent by an earlier run: never sent again")
        click.echo(f"  {_rows(len(plan.ready))} ready to send")
        for money in plan.totals().values():
            click.echo(f"    {money.format():>20}")
        if plan.invalid:
            click.echo(f"  {_rows(len(plan.invalid))} refused (skipped when the file is run):")
            for problem in plan.invalid:
                click.echo(f"    row {problem.row}: {problem.reason}")
        for repeat in plan.repeats:
            click.echo(f"  note: row {repeat.row} {repeat.reason}")
        if dry_run:
            click.echo("dry run: nothing was sent")

    def _report(self, plan: BatchPlan, run: BatchRun, unknown: list[UnknownRow], resent: list[RowResult]) -> int:
        sent, skipped = run.sent(), run.skipped()
        results = str(plan.file.results_path)
        failed = [r for r in sent if r.attempt.status is RefundStatus.FAILED]
        statuses: dict[str, int] = {}
        for result in sent:
            statuses[result.status] = statuses.get(result.status, 0) + 1
        counts = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        message = (
            f"sent {len(sent)} ({counts or 'none'}); {len(run.already_sent())} sent before; "
            f"{len(skipped)} skipped; results in {results}"
        )
        code, exit_code = ("sent", 0)
        extra = {}
        if self.resend_unknown:
            message = f"resent {sum(r.sent_now for r in resent)} of unknown outcome; " + message
            extra = {
                "resent": [{"row": r.row, "attempt": r.attempt.attempt_id, "detail": r.detail} for r in resent if r.sent_now],
                "not_resent": [_not_resent(row, resent) for row in unknown if row.row not in {r.row for r in resent if r.sent_now}],
            }  # fmt: skip
        unknown = [r for r in run.results if r.attempt and r.attempt.status is RefundStatus.UNKNOWN]
        if unknown:
            code, exit_code = "outcome_unknown", 3
            message += (f"; {len(unknown)} of unknown outcome: never sent again with a new key. "
                        "`refund-tui recover` settles them from the provider; a Vesicash row left "
                        "unknown is resent only by `--resend-unknown` (or `refund-tui resend`) "
                        "once its quiet period is over")  # fmt: skip
        elif skipped or failed:
            code, exit_code = "rows_not_sent" if skipped else "refused_by_provider", 1
        if self.as_json:
            print_outcome(code, message, exit_code, rows=len(plan.file.lines), sent=len(sent),
                          already_sent=len(run.already_sent()),
                          skipped=[{"row": r.row, "reason": r.detail} for r in skipped], results=results,
                          **extra)  # fmt: skip
            return exit_code
        click.echo(message)
        for result in skipped:
            click.echo(f"  row {result.row} skipped: {result.detail}")
        return exit_code


def _rows(count: int) -> str:
    return f"{count} row{'s' * (count != 1)}"


def _confirm(plan: BatchPlan, *, live: bool) -> None:
    """Ask before sending; a live profile makes the operator type the number of rows."""
    totals = ", ".join(money.format() for money in plan.totals().values())
    _ask(f"{len(plan.ready)} refunds", totals, "send", live=live)


def _ask(what: str, totals: str, verb: str, *, live: bool, warning: str = "") -> None:
    """"VERB WHAT (TOTALS)?" answered yes; on a live profile the number typed back."""
    count = what.split()[0]
    if not live:
        if not click.confirm(f"{warning}{verb.capitalize()} {what} ({totals})?", default=False, err=True):
            raise Refused("not confirmed: nothing was sent")
        return
    typed = click.prompt(
        f"LIVE: {what} totalling {totals}. {warning}Type the number of refunds ({count}) to {verb} them",
        default="", err=True,
    )  # fmt: skip
    if typed.strip() != count:
        raise Refused("the number typed does not match: nothing was sent")


def _unknown(row: UnknownRow) -> dict[str, object]:
    """A row of unknown outcome: why it is not resent now (None: it may be), and from when
    a resend is offered."""
    evidence = row.evidence
    return {"row": row.row, "attempt": evidence.attempt.attempt_id, "reason": evidence.refusal,
            "resend_from": evidence.quiet_until.isoformat()}  # fmt: skip


def _not_resent(row: UnknownRow, resent: list[RowResult]) -> dict[str, object]:
    """A row left unknown by this run, and why (the resend's own refusal, if it was tried)."""
    return {**_unknown(row), "reason": next((r.detail for r in resent if r.row == row.row), row.evidence.refusal)}


class ProgressLine:
    """Counts, rate and time left on stderr: redrawn in place on a terminal, else a line
    every LOG_EVERY seconds."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, progress: Progress) -> None:
        now = time.monotonic()
        finished = progress.done == progress.total
        if not finished and now - self._last < (0.1 if self._tty else LOG_EVERY):
            return
        self._last = now
        line = progress.line()
        if self._tty:
            click.echo(f"\r\x1b[2K{line}", nl=False, err=True)
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self._tty:
            click.echo("", err=True)
