"""Batch refunds from a CSV file in the console: the dry run first (every row checked as a
single refund, totals per currency), then, on a typed count, each row sent once with its
result live, and ``FILE.results.csv`` written. A Vesicash row an earlier run left of unknown
outcome is shown with the evidence of ``refund-tui resend``; R resends those it allows, on a
typed count (the CLI's ``--resend-unknown``). The rules are ``core.batch``'s."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Static
from textual.worker import Worker, WorkerState

from refund_tui.core.batch import (
    BatchFileError,
    BatchPlan,
    BatchRun,
    RowResult,
    UnknownRow,
    plan_batch,
    read_batch,
    resend_rows,
    run_batch,
    unknown_rows,
    write_results,
)
from refund_tui.core.triage import totals
from refund_tui.tui.keys import bindings
from refund_tui.tui.messages import describe_error
from refund_tui.tui.screens.count_confirm import CountConfirmScreen, money_totals
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.footer import KeyFooter

COLUMNS = (("row", "Row"), ("provider", "Provider"), ("payment", "Payment"), ("amount", "Amount"),
           ("check", "Check / result"))  # fmt: skip


class BatchScreen(Screen):
    """Type a file's path, see every row checked, send the good ones on a typed count."""

    BINDINGS = bindings("batch")
    DEFAULT_CSS = """
    BatchScreen #batch-file { height: 1; padding: 0 1; }
    BatchScreen #batch-file Label { width: auto; padding-right: 1; }
    BatchScreen #batch-summary { height: auto; padding: 0 1; }
    BatchScreen DataTable { height: 1fr; }
    BatchScreen #batch-row { height: auto; max-height: 3; padding: 0 1; }
    """

    class Planned(Message):
        def __init__(self, plan: BatchPlan, unknown: list[UnknownRow]) -> None:
            super().__init__()
            self.plan = plan
            self.unknown = unknown

    class Resent(Message):
        def __init__(self, results: list[RowResult]) -> None:
            super().__init__()
            self.results = results

    class RowSent(Message):
        def __init__(self, result: RowResult) -> None:
            super().__init__()
            self.result = result

    class Finished(Message):
        def __init__(self, run: BatchRun) -> None:
            super().__init__()
            self.run = run

    def __init__(self) -> None:
        super().__init__()
        self.plan: BatchPlan | None = None
        self.unknown: list[UnknownRow] = []
        self.sending = False

    def compose(self) -> ComposeResult:
        yield Banner()
        with Horizontal(id="batch-file"):
            yield Label("CSV file")
            yield Input(placeholder="path/to/refunds.csv, then enter to check every row", compact=True, id="batch-path")
        yield Static("Columns: provider,payment,amount,reason[,phone,country,webhook_url]; nothing is sent "
                     "before every row is checked.", markup=False, id="batch-summary")  # fmt: skip
        yield DataTable(cursor_type="row", id="batch-table")
        yield Static("", markup=False, id="batch-row")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, title in COLUMNS:
            table.add_column(title, key=key)
        self.query_one("#batch-path", Input).focus()

    def _say(self, text: str) -> None:
        self.query_one("#batch-summary", Static).update(text)

    # -- the dry run --------------------------------------------------------------------

    @on(Input.Submitted, "#batch-path")
    def _check(self, event: Input.Submitted) -> None:
        if self.sending or not event.value.strip():
            return
        self.plan = None
        self.query_one(DataTable).clear()
        self._say(f"Checking every row of {event.value.strip()} ... nothing is sent.")
        self.check_file(Path(event.value.strip()).expanduser())

    def _check_again(self) -> None:
        """Check the same file again (after resends, rows of their payments may be ready)."""
        self.plan = None
        self.query_one(DataTable).clear()
        self._say("Checking the file again ... nothing is sent.")
        self.check_file(Path(self.query_one("#batch-path", Input).value.strip()).expanduser())

    @work(exclusive=True, exit_on_error=False, group="batch-check", description="check batch file")
    async def check_file(self, path: Path) -> None:
        try:
            batch = await asyncio.to_thread(read_batch, path)
        except BatchFileError as error:
            self._say(f"Refused: {error}")
            return
        service = self.app.service
        plan = await plan_batch(service, batch, service.concurrency)
        self.post_message(self.Planned(plan, await unknown_rows(service, plan, service.concurrency)))

    @on(Planned)
    def _planned(self, message: Planned) -> None:
        self.plan = plan = message.plan
        self.unknown = message.unknown
        waiting = {row.row: row for row in message.unknown}
        table = self.query_one(DataTable)
        refused = {problem.row: problem.reason for problem in plan.invalid}
        ready = {line.row for line, _ in plan.ready}
        repeats = {repeat.row: repeat.reason for repeat in plan.repeats}
        for line in plan.file.lines:
            if line.row in waiting:
                check = _unknown_check(waiting[line.row])
            elif line.row in plan.recorded:
                check = Text("sent by an earlier run", style="dim")
            elif line.row in refused:
                check = Text(f"refused: {refused[line.row]}", style="bold red")
            elif line.row in repeats:
                check = Text(f"ready, but {repeats[line.row]}", style="bold yellow")
            else:
                check = Text("ready" if line.row in ready else "", style="green")
            table.add_row(str(line.row), line.provider, line.payment, Text(line.amount, justify="right"),
                          check, key=str(line.row))  # fmt: skip
        sent_before = f"; {len(plan.recorded)} sent by an earlier run" if plan.recorded else ""
        resendable = sum(row.resendable for row in self.unknown)
        unknown = (
            f" {len(self.unknown)} of unknown outcome at Vesicash, {resendable} may be resent now (R)."
            if self.unknown else ""
        )  # fmt: skip
        self._say(
            f"{plan.file.path.name}: {len(plan.file.lines)} rows. {len(plan.ready)} ready "
            f"({money_totals(plan.totals())}), {len(plan.invalid)} refused{sent_before}.{unknown} "
            + ("ctrl+s sends the ready rows (typed count first)." if plan.ready else "Nothing to send.")
        )
        table.focus()

    @on(DataTable.RowHighlighted)
    def _row_in_full(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted row's check or result written out in full (the cell clips it)."""
        if event.row_key.value is not None:
            check = self.query_one(DataTable).get_cell(event.row_key, "check")
            self.query_one("#batch-row", Static).update(f"row {event.row_key.value}: {check.plain}")

    # -- sending ------------------------------------------------------------------------

    def _cannot_send(self, nothing: str | None) -> bool:
        """True, once the operator is told why, when nothing may be sent now (``nothing``:
        why there is nothing to send, if so)."""
        service = self.app.service
        if self.sending:
            self.notify("Already sending this file.", severity="warning")
        elif nothing is not None:
            self.notify(nothing, severity="warning")
        elif not service.refunds_enabled:
            self.notify(f"Profile '{service.profile}' is read-only: nothing can be sent.", severity="error")
        else:
            return False
        return True

    def action_send(self) -> None:
        plan, service = self.plan, self.app.service
        if self._cannot_send(None if plan and plan.ready else "Check a file with ready rows first (type its path, enter)."):
            return
        summary = (
            f"{service.environment.upper()}: send {len(plan.ready)} refunds from "
            f"{plan.file.path.name}, totalling {money_totals(plan.totals())}; "
            f"{len(plan.invalid)} refused rows are skipped."
        )
        self.app.push_screen(CountConfirmScreen(summary, len(plan.ready)), lambda go: go and self._start())

    def action_resend(self) -> None:
        """Resend the file's unknown Vesicash rows that the evidence allows, on a typed count."""
        rows = [row for row in self.unknown if row.resendable]
        if self._cannot_send(None if rows else "No row of unknown outcome may be resent now: each row says why and from when."):
            return
        summary = (
            f"{self.app.service.environment.upper()}: resend {len(rows)} Vesicash refunds of unknown outcome, "
            f"totalling {money_totals(totals(row.evidence.attempt for row in rows))}. Their payment "
            "records show no refund from them after the quiet period, but a resend pays twice if "
            "a first request still executes."
        )
        self.app.push_screen(CountConfirmScreen(summary, len(rows)), lambda go: go and self._resend(rows))

    def _resend(self, rows: list[UnknownRow]) -> None:
        self.sending = True
        for row in rows:
            self.query_one(DataTable).update_cell(str(row.row), "check", "resending...")
        self._say(f"Resending {len(rows)} refunds, each once, the evidence read again first ...")
        self.resend_unknown(rows)

    @work(exclusive=True, exit_on_error=False, group="batch-send", description="resend unknown rows")
    async def resend_unknown(self, rows: list[UnknownRow]) -> None:
        results = await resend_rows(self.app.service, rows, lambda result: self.post_message(self.RowSent(result)))
        self.post_message(self.Resent(results))

    @on(Resent)
    def _resent(self, message: Resent) -> None:
        self.sending = False
        self._check_again()
        resent = sum(result.sent_now for result in message.results)
        self.notify(f"Resent {resent} of {len(message.results)}; the file is checked again.")

    def _start(self) -> None:
        self.sending = True
        for line, _ in self.plan.ready:
            self.query_one(DataTable).update_cell(str(line.row), "check", "sending...")
        self._say(f"Sending {len(self.plan.ready)} refunds, each once ...")
        self.send_rows(self.plan)

    @work(exclusive=True, exit_on_error=False, group="batch-send", description="send batch")
    async def send_rows(self, plan: BatchPlan) -> None:
        service = self.app.service
        run = await run_batch(service, plan, concurrency=service.concurrency,
                              on_progress=lambda progress: self._say(progress.line().capitalize()),
                              on_result=lambda result: self.post_message(self.RowSent(result)))  # fmt: skip
        await asyncio.to_thread(write_results, plan.file.results_path, plan, run)
        self.post_message(self.Finished(run))

    @on(RowSent)
    def _row_sent(self, message: RowSent) -> None:
        result = message.result
        bad = result.attempt is None or result.status in ("failed", "unknown")
        text = f"{result.status}" + (f": {result.detail}" if result.detail else "")
        self.query_one(DataTable).update_cell(str(result.row), "check", Text(text, style="bold red" if bad else "green"))

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self.sending = False
        run = message.run
        self._say(
            f"Sent {len(run.sent())}, {len(run.already_sent())} sent before, {len(run.skipped())} skipped. "
            f"Results: {self.plan.file.results_path}"
            + (f". {describe_error(run.trail_lost)}" if run.trail_lost else "")
        )

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR or event.worker.group not in ("batch-check", "batch-send"):
            return
        if event.worker.group == "batch-send":
            self.sending = False
            self._say(f"Sending stopped: {describe_error(event.worker.error)}. Rows already sent are "
                      "recorded: check the same file again, then send, to resume (no row is sent twice).")  # fmt: skip
        else:
            self._say(f"Could not check the file: {describe_error(event.worker.error)}")

    def action_back(self) -> None:
        if self.sending:
            self.notify("Still sending: every row's result shows here as it comes.", severity="warning")
            return
        self.app.pop_screen()


def _unknown_check(row: UnknownRow) -> Text:
    """A row of unknown outcome: whether it may be resent now, and why not."""
    if row.resendable:
        return Text("unknown: the record shows none of it, resend allowed (R)", style="bold yellow")
    return Text(f"unknown: not resent: {row.evidence.refusal}", style="bold red")
