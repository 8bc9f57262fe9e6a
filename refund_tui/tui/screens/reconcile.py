"""Reconciliation in the console: every payment the ledger touched read again from its
provider (progress shown), each disagreement listed with both sides, acknowledged with a note.
The rules are ``core.reconcile``'s."""

from __future__ import annotations

import asyncio
import dataclasses

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from refund_tui.core.reconcile import Finding, ReadProgress, Report, Side, reconcile
from refund_tui.tui.keys import bindings
from refund_tui.tui.messages import describe_error
from refund_tui.tui.screens.note import NoteScreen
from refund_tui.tui.widgets.banner import Banner

COLUMNS = (("kind", "Finding"), ("payment", "Payment"), ("ledger", "Ledger"), ("provider", "Provider"),
           ("detail", "Detail"))  # fmt: skip


def side_text(side: Side | None) -> str:
    """One side in a cell: status and amount (the line under the table has the rest)."""
    return f"{side.status} {side.amount.format()}" if side else "-"


def side_line(label: str, side: Side | None) -> str:
    if side is None:
        return f"{label}: nothing"
    when = f" at {side.at:%Y-%m-%d %H:%M:%S} UTC" if side.at else ""
    return f"{label}: {side.reference or 'no reference'} {side.amount.format()} {side.status}{when}"


class ReconcileScreen(Screen):
    """The providers' records against the ledger, finding by finding."""

    BINDINGS = bindings("reconcile")
    DEFAULT_CSS = """
    ReconcileScreen #reconcile-summary { height: auto; padding: 0 1; }
    ReconcileScreen DataTable { height: 1fr; }
    ReconcileScreen #reconcile-finding { height: auto; max-height: 5; padding: 0 1; }
    """

    class Read(Message):
        def __init__(self, progress: ReadProgress) -> None:
            super().__init__()
            self.done, self.total = progress.done, progress.total

    class Done(Message):
        def __init__(self, report: Report) -> None:
            super().__init__()
            self.report = report

    def __init__(self) -> None:
        super().__init__()
        self.report: Report | None = None

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static("", markup=False, id="reconcile-summary")
        yield DataTable(cursor_type="row", id="reconcile-table")
        yield Static("", markup=False, id="reconcile-finding")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, title in COLUMNS:
            table.add_column(title, key=key)
        self.action_run()

    def _say(self, text: str) -> None:
        self.query_one("#reconcile-summary", Static).update(text)

    def action_run(self) -> None:
        self._say("Reading every payment the ledger touched from its provider ...")
        self.check_all()

    @work(exclusive=True, exit_on_error=False, group="reconcile", description="reconcile")
    async def check_all(self) -> None:
        service = self.app.service
        report = await reconcile(service, concurrency=service.concurrency,
                                 on_progress=lambda progress: self.post_message(self.Read(progress)))  # fmt: skip
        self.post_message(self.Done(report))

    @on(Read)
    def _read(self, message: Read) -> None:
        self._say(f"Reading payment records: {message.done} of {message.total} ...")

    @on(Done)
    def _done(self, message: Done) -> None:
        self.report = report = message.report
        if report.updated:  # statuses learnt from the records: the banner counts them now
            self.app.refresh_counts()
        table = self.query_one(DataTable)
        table.clear()
        for finding in report.findings:
            style = "dim" if finding.acknowledged else "bold red"
            table.add_row(Text(finding.kind.value, style=style), finding.payment_reference,
                          side_text(finding.ledger), side_text(finding.at_provider),
                          Text(finding.detail[:60]), key=finding.finding_id)  # fmt: skip
        unread = f"; {len(report.unreadable)} could not be read" if report.unreadable else ""
        self._say(
            report.headline() + unread
            + (". a acknowledges the highlighted one." if report.open_findings() else ". Nothing to reconcile.")
        )
        if report.findings:
            table.focus()

    def _highlighted(self) -> Finding | None:
        table = self.query_one(DataTable)
        if self.report is None or not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next(f for f in self.report.findings if f.finding_id == key)

    @on(DataTable.RowHighlighted)
    def _finding_in_full(self) -> None:
        finding = self._highlighted()
        if finding is not None:
            ack = f" Acknowledged by {finding.acknowledged.operator}: {finding.acknowledged.note}" if finding.acknowledged else ""
            self.query_one("#reconcile-finding", Static).update(
                f"{finding.finding_id}: {finding.detail}.{ack}\n{side_line('ledger', finding.ledger)}; "
                f"{side_line('provider', finding.at_provider)}"
            )

    def action_acknowledge(self) -> None:
        finding = self._highlighted()
        if finding is None:
            return
        prompt = (f"Acknowledge {finding.kind.value} on {finding.payment_reference}: say what you found "
                  "(kept in the ledger, with your name).")  # fmt: skip
        note = NoteScreen(prompt, "e.g. refunded by finance on the dashboard")
        self.app.push_screen(note, lambda text: text and self.save_note(finding, text))

    @work(exit_on_error=False, group="reconcile-ack", description="acknowledge finding")
    async def save_note(self, finding: Finding, note: str) -> None:
        service = self.app.service
        ack = await asyncio.to_thread(
            service.ledger.acknowledge_finding, finding.finding_id, kind=finding.kind.value,
            provider=finding.provider, payment_reference=finding.payment_reference, note=note,
            operator=service.operator,
        )  # fmt: skip
        report = self.report
        report.findings = [dataclasses.replace(f, acknowledged=ack) if f.finding_id == finding.finding_id else f
                           for f in report.findings]  # fmt: skip
        self.post_message(self.Done(report))

    @on(Worker.StateChanged)
    def _failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.group.startswith("reconcile"):
            self._say(f"Reconciliation stopped: {describe_error(event.worker.error)} (ctrl+r: again)")

    def action_back(self) -> None:
        self.app.pop_screen()
