"""Bulk triage on the board: select failed or unknown refunds in the board's own table, then
retry the failed ones or resolve the unknown ones with one typed confirmation; each row's
result is shown live on a screen of its own.

``BoardSelection`` is the board's part (keys, marks, the selection line, the confirmation);
``TriageScreen`` runs one confirmed action and shows its progress and per-row results. What
happens to each refund is ``core.triage``: every retry is its own linked attempt with its own
key under the usual rules, every unknown one is resolved as ``recover`` does; one row's
problem never stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from refund_tui.core.ledger import Attempt
from refund_tui.core.models import RefundStatus
from refund_tui.core.triage import TriageResult, resolve_unknown, retry_failed, totals
from refund_tui.tui.keys import bindings
from refund_tui.tui.messages import describe_error
from refund_tui.tui.screens.count_confirm import CountConfirmScreen, money_totals
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.footer import KeyFooter
from refund_tui.tui.widgets.status import attempt_status

#: What each bulk action works on, and how it is named.
ACTIONS = {
    "retry": (RefundStatus.FAILED, "Retry", "failed refunds", "each a new attempt with its own key, linked to its failure"),
    "resolve": (RefundStatus.UNKNOWN, "Resolve", "refunds of unknown outcome", "each asked of its provider, never resent with a new key"),
}  # fmt: skip
COLUMNS = (("status", "Status"), ("payment", "Payment"), ("amount", "Amount"),
           ("reason", "Reason / failure"), ("result", "Result"))  # fmt: skip
#: Longest reason or failure in a cell, so the result column fits at 80 columns.
REASON_WIDTH = 26


class BoardSelection:
    """The board's bulk triage: ``space`` selects the highlighted failed or unknown refund,
    ``shift+up/down`` extend the selection, ``*`` selects every one shown (again: none),
    ``t`` retries the selected failed ones, ``v`` resolves the selected unknown ones.

    Only a refund that can be acted on is selected: a failed one not yet retried, or one of
    unknown outcome. A row that leaves the board (filter, view) leaves the selection."""

    def _selectable(self) -> dict[str, Attempt]:
        """The board's rows that bulk triage can act on, by attempt id."""
        data = self.last_data
        if data is None:
            return {}
        return {
            a.attempt_id: a
            for a in data.attempts
            if (a.status is RefundStatus.FAILED and a.attempt_id not in data.retried)
            or a.status is RefundStatus.UNKNOWN
        }

    def _chosen(self) -> list[Attempt]:
        """The selected rows, as the board last read them, in board order."""
        table = self.query_one("#board-table")
        if not table.selected:
            return []
        selectable = self._selectable()
        return [selectable[key] for key in table.order if key in table.selected and key in selectable]

    def show_selection(self) -> None:
        """The line under the table: how many are selected, of what, for how much."""
        line = self.query_one("#board-selection", Static)
        chosen = self._chosen()
        line.set_class(bool(chosen), "-on")
        if chosen:
            failed = sum(a.status is RefundStatus.FAILED for a in chosen)
            line.update(
                f"{len(chosen)} selected ({failed} failed, {len(chosen) - failed} unknown): "
                f"{money_totals(totals(chosen))}  t retry  v resolve"
            )

    def action_toggle_select(self) -> None:
        table = self.query_one("#board-table")
        key = table.highlighted_key
        if key is None:
            return
        if key not in self._selectable():
            self.notify("Only a failed refund (not yet retried) or one of unknown outcome can be selected.")
            return
        table.select([key], key not in table.selected)
        self.show_selection()

    def action_extend(self, step: int) -> None:
        """Select the highlighted refund and the next one up or down (shift+arrows); rows
        that cannot be acted on are passed over."""
        table = self.query_one("#board-table")
        selectable = self._selectable()
        if table.highlighted_key is None:
            return
        table.select([key for key in [table.highlighted_key] if key in selectable], True)
        table.move_cursor(row=table.cursor_row + step)
        table.select([key for key in [table.highlighted_key] if key in selectable], True)
        self.show_selection()

    def action_select_all(self) -> None:
        """Select every failed or unknown refund shown; with all already selected, none."""
        table = self.query_one("#board-table")
        selectable = self._selectable()
        if not selectable:
            self.notify("No failed or unknown refunds shown here (f shows the failed ones).")
            return
        table.select(list(selectable), bool(set(selectable) - table.selected))
        self.show_selection()

    def action_bulk(self, action: str) -> None:
        status, verb, noun, how = ACTIONS[action]
        service = self.app.service
        chosen = [attempt for attempt in self._chosen() if attempt.status is status]
        if not chosen:
            self.notify(f"Select {noun} first (space, shift+arrows, * for all shown).", severity="warning")
        elif action == "retry" and not service.refunds_enabled:
            self.notify(f"Profile '{service.profile}' is read-only: nothing to {verb.lower()}.", severity="error")
        else:
            summary = (
                f"{service.environment.upper()}: {verb} {len(chosen)} {noun}, totalling "
                f"{money_totals(totals(chosen))}: {how}."
            )
            self.app.push_screen(CountConfirmScreen(summary, len(chosen)), lambda go: go and self._start(action, chosen))

    def _start(self, action: str, chosen: list[Attempt]) -> None:
        self.query_one("#board-table").select([attempt.attempt_id for attempt in chosen], False)
        self.show_selection()
        self.app.push_screen(TriageScreen(action, chosen))


class TriageScreen(Screen):
    """One confirmed bulk action: every chosen refund with its result as it comes."""

    BINDINGS = bindings("triage")
    DEFAULT_CSS = """
    TriageScreen #triage-help { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    TriageScreen #triage-progress { height: 1; padding: 0 1; }
    TriageScreen DataTable { height: 1fr; }
    TriageScreen #triage-row { height: auto; max-height: 3; padding: 0 1; }
    """

    class RowDone(Message):
        def __init__(self, result: TriageResult) -> None:
            super().__init__()
            self.result = result

    def __init__(self, action: str, chosen: Sequence[Attempt]) -> None:
        super().__init__()
        self.action = action
        self.chosen = list(chosen)
        self.done = 0

    @property
    def running(self) -> bool:
        return self.done < len(self.chosen)

    def compose(self) -> ComposeResult:
        _, verb, noun, how = ACTIONS[self.action]
        yield Banner()
        yield Static(f"{verb} {len(self.chosen)} {noun}: {how}", markup=False, id="triage-help")
        yield DataTable(cursor_type="row", id="triage-table")
        yield Static("", markup=False, id="triage-row")
        yield Static(f"0 of {len(self.chosen)} done...", markup=False, id="triage-progress")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, title in COLUMNS:
            table.add_column(title, key=key)
        for attempt in self.chosen:
            reason = attempt.failure_reason if attempt.status is RefundStatus.FAILED else attempt.reason
            table.add_row(attempt_status(attempt), attempt.payment_reference,
                          Text(attempt.amount.format(), justify="right"), Text((reason or "")[:REASON_WIDTH]),
                          "working...", key=attempt.attempt_id)  # fmt: skip
        table.focus()
        self.run_bulk([attempt.attempt_id for attempt in self.chosen])

    @work(exclusive=True, exit_on_error=False, group="triage", description="bulk triage")
    async def run_bulk(self, attempt_ids: list[str]) -> None:
        run = retry_failed if self.action == "retry" else resolve_unknown
        await run(self.app.service, attempt_ids, concurrency=self.app.service.concurrency,
                  on_result=lambda result: self.post_message(self.RowDone(result)))  # fmt: skip

    @on(RowDone)
    def _row_done(self, message: RowDone) -> None:
        result = message.result
        style = "green" if result.ok else "bold red"
        self.query_one(DataTable).update_cell(result.attempt_id, "result", Text(result.outcome[:60], style=style))
        self._row_in_full()
        self.done += 1
        total = len(self.chosen)
        progress = f"{self.done} of {total} done" + (": finished (esc: back to the board)" if not self.running else "...")
        self.query_one("#triage-progress", Static).update(progress)

    @on(DataTable.RowHighlighted)
    def _row_in_full(self) -> None:
        """The highlighted refund's payment and result written out in full (cells clip them)."""
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            payment, result = table.get_cell(key, "payment"), table.get_cell(key, "result")
            self.query_one("#triage-row", Static).update(f"{payment}: {getattr(result, 'plain', result)}")

    @on(Worker.StateChanged)
    def _stopped(self, event: Worker.StateChanged) -> None:
        """Should the work itself fail, say so and let the operator leave."""
        if event.worker.group == "triage" and event.state is WorkerState.ERROR:
            self.done = len(self.chosen)
            self.query_one("#triage-progress", Static).update(
                f"Stopped: {describe_error(event.worker.error)}. The board shows what was done."
            )

    def action_back(self) -> None:
        if self.running:
            self.notify("Still working: the results show here as they come.", severity="warning")
            return
        self.app.pop_screen()
