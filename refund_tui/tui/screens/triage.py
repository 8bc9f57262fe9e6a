"""Bulk triage, opened from the board: select many failed or unknown refunds, then retry the
failed ones or resolve the unknown ones with one typed confirmation, results live per row.

What happens to each refund is ``core.triage``: every retry is its own linked attempt with
its own key under the usual rules, every unknown one is resolved as ``recover`` does; one
row's problem never stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from refund_tui.core.ledger import Attempt
from refund_tui.core.models import RefundStatus
from refund_tui.core.triage import TriageResult, resolve_unknown, retry_failed, totals
from refund_tui.tui.keys import bindings
from refund_tui.tui.screens.count_confirm import CountConfirmScreen, money_totals
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.footer import KeyFooter
from refund_tui.tui.widgets.status import attempt_status

#: What each bulk action works on, and how it is named.
ACTIONS = {
    "retry": (RefundStatus.FAILED, "Retry", "failed refunds", "each a new attempt with its own key, linked to its failure"),
    "resolve": (RefundStatus.UNKNOWN, "Resolve", "refunds of unknown outcome", "each asked of its provider, never resent with a new key"),
}  # fmt: skip
COLUMNS = (("selected", " "), ("status", "Status"), ("payment", "Payment"), ("amount", "Amount"),
           ("reason", "Reason / failure"), ("result", "Result"))  # fmt: skip
MARK = {True: Text("[x]", style="bold"), False: Text("[ ]")}  # Text: brackets are not markup
#: Longest reason or failure in a cell, so the result column fits at 80 columns.
REASON_WIDTH = 26


def actionable(attempts: Sequence[Attempt]) -> list[Attempt]:
    """The refunds bulk triage can act on: failed or of unknown outcome."""
    return [a for a in attempts if a.status in (RefundStatus.FAILED, RefundStatus.UNKNOWN)]


class TriageScreen(Screen):
    """The board's failed and unknown refunds, to select and act on together."""

    BINDINGS = bindings("triage")
    DEFAULT_CSS = """
    TriageScreen #triage-help { height: 1; padding: 0 1; color: $text-muted; }
    TriageScreen #triage-progress { height: 1; padding: 0 1; }
    TriageScreen DataTable { height: 1fr; }
    """

    class RowDone(Message):
        def __init__(self, result: TriageResult) -> None:
            super().__init__()
            self.result = result

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        super().__init__()
        self.attempts = {attempt.attempt_id: attempt for attempt in actionable(attempts)}
        self.selected: set[str] = set()
        self.running: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static("space select  shift+up/down extend  * all shown  t retry failed  v resolve unknown",
                     markup=False, id="triage-help")  # fmt: skip
        yield DataTable(cursor_type="row", id="triage-table")
        yield Static("", markup=False, id="triage-progress")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, title in COLUMNS:
            table.add_column(title, key=key)
        for attempt in self.attempts.values():
            reason = attempt.failure_reason if attempt.status is RefundStatus.FAILED else attempt.reason
            table.add_row(MARK[False], attempt_status(attempt), attempt.payment_reference,
                          Text(attempt.amount.format(), justify="right"), Text((reason or "")[:REASON_WIDTH]), "",
                          key=attempt.attempt_id)  # fmt: skip
        self._show_selection()
        table.focus()

    # -- selecting ------------------------------------------------------------------------

    def _current(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _mark(self, attempt_id: str, selected: bool) -> None:
        (self.selected.add if selected else self.selected.discard)(attempt_id)
        self.query_one(DataTable).update_cell(attempt_id, "selected", MARK[selected])

    def _show_selection(self) -> None:
        chosen = [self.attempts[key] for key in self.selected]
        self.query_one("#triage-progress", Static).update(
            f"{len(chosen)} of {len(self.attempts)} selected: {money_totals(totals(chosen))}"
        )

    def action_toggle_select(self) -> None:
        key = self._current()
        if key is not None:
            self._mark(key, key not in self.selected)
            self._show_selection()

    def action_extend(self, step: int) -> None:
        """Select the row under the cursor and the next one up or down (shift+arrows)."""
        key = self._current()
        if key is None:
            return
        self._mark(key, True)
        table = self.query_one(DataTable)
        table.move_cursor(row=table.cursor_row + step)
        self._mark(self._current(), True)
        self._show_selection()

    def action_select_all(self) -> None:
        """Select every row shown; with all already selected, clear the selection."""
        everything = set(self.attempts) - self.selected
        for key in list(self.attempts):
            self._mark(key, bool(everything))
        self._show_selection()

    # -- acting -----------------------------------------------------------------------------

    def action_bulk(self, action: str) -> None:
        status, verb, noun, how = ACTIONS[action]
        chosen = [self.attempts[key] for key in self.selected if self.attempts[key].status is status]
        if self.running:
            self.notify("Still working on the last selection.", severity="warning")
        elif not chosen:
            self.notify(f"Select {noun} first (space, shift+arrows, *).", severity="warning")
        elif action == "retry" and not self.app.service.refunds_enabled:
            self.notify(f"Profile '{self.app.service.profile}' is read-only: nothing to {verb.lower()}.", severity="error")
        else:
            summary = (
                f"{self.app.service.environment.upper()}: {verb} {len(chosen)} {noun}, totalling "
                f"{money_totals(totals(chosen))}: {how}."
            )
            confirm = CountConfirmScreen(summary, len(chosen))
            self.app.push_screen(confirm, lambda go: go and self._start(action, chosen))

    def _start(self, action: str, chosen: list[Attempt]) -> None:
        table = self.query_one(DataTable)
        for attempt in chosen:
            table.update_cell(attempt.attempt_id, "result", "working...")
        self.running = {"total": len(chosen), "done": 0}
        self.run_bulk(action, [attempt.attempt_id for attempt in chosen])

    @work(exclusive=True, exit_on_error=False, group="triage", description="bulk triage")
    async def run_bulk(self, action: str, attempt_ids: list[str]) -> None:
        run = retry_failed if action == "retry" else resolve_unknown
        await run(self.app.service, attempt_ids, concurrency=self.app.service.concurrency,
                  on_result=lambda result: self.post_message(self.RowDone(result)))  # fmt: skip

    @on(RowDone)
    def _row_done(self, message: RowDone) -> None:
        result = message.result
        style = "green" if result.ok else "bold red"
        self.query_one(DataTable).update_cell(result.attempt_id, "result", Text(result.outcome[:60], style=style))
        self.running["done"] += 1
        done, total = self.running["done"], self.running["total"]
        self.query_one("#triage-progress", Static).update(f"{done} of {total} done" + (": finished" if done == total else "..."))
        if done == total:
            self.running = {}

    def action_back(self) -> None:
        if self.running:
            self.notify("Still working: the results show here as they come.", severity="warning")
            return
        self.app.pop_screen()
