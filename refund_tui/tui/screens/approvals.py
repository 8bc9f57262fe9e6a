"""The approvals queue (team ledger): other roles' refunds above the threshold, waiting for a
second person. Enter shows the confirmation (who asked, why, everything the refund's own
confirmation shows) and sends it once the amount is typed back; d denies it with a reason.

The database decides (``ledgers/postgres_schema``): this screen only asks and reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from refund_tui.core.approvals import ApprovalRules
from refund_tui.core.ledger import Attempt, Ledger
from refund_tui.core.models import ProviderError
from refund_tui.core.text import printable
from refund_tui.tui.keys import bindings
from refund_tui.tui.messages import LedgerChanged, describe_error
from refund_tui.tui.screens.confirm import ConfirmScreen
from refund_tui.tui.screens.note import NoteScreen
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from refund_tui.core.money import Money
    from refund_tui.core.service import PaymentView

COLUMNS = (("asked", "Asked UTC"), ("by", "By"), ("payment", "Payment"), ("amount", "Amount"),
           ("reason", "Reason"))  # fmt: skip
REASON_WIDTH = 24


@dataclass(frozen=True, slots=True)
class Queue:
    """One read of the queue."""

    waiting: list[Attempt]
    mine: int
    rules: ApprovalRules
    may_approve: bool
    #: The database login; None on a solo (SQLite) ledger, which has no approvals.
    role: str | None


def read_queue(ledger: Ledger) -> Queue:
    """Blocking (several ledger reads): call it in a thread."""
    return Queue(
        waiting=ledger.awaiting_approval(),
        mine=len(ledger.awaiting_approval(mine=True)),
        rules=ledger.approval_rules(),
        may_approve=ledger.may_approve(),
        role=getattr(ledger, "role", None),
    )


def requester(attempt: Attempt) -> str:
    who = attempt.recorded_by or attempt.operator.name
    return f"{who} ({attempt.operator.name}@{attempt.operator.hostname})"


class ApproveScreen(ConfirmScreen):
    """The refund as its requester confirmed it, who asked and why; the amount typed back
    approves and sends it."""

    BACK_HINT = "esc: back to the queue, nothing sent"

    def __init__(self, attempt: Attempt, view: PaymentView | None, rules: ApprovalRules, *, live: bool) -> None:
        ModalScreen.__init__(self, classes="-live" if live else "-sandbox")
        self.attempt = attempt
        self.view = view
        self.rules = rules
        self.live = live
        self.sending = False

    @property
    def amount(self) -> Money:
        return self.attempt.amount

    def _title(self) -> Text:
        where = "LIVE: real money will move" if self.live else "SANDBOX: simulated"
        return Text(f" APPROVE another operator's refund ({where}) ", style="bold reverse red" if self.live else "bold")

    def _send_label(self) -> str:
        return "Approve and send LIVE" if self.live else "Approve and send"

    def _facts(self) -> Table:
        attempt, view = self.attempt, self.view
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column(overflow="fold")
        rows: list[tuple[str, str | Text]] = [
            ("Asked by", requester(attempt)),
            ("Asked at", f"{attempt.created_at:%Y-%m-%d %H:%M} UTC, lapses "
                         f"{self.rules.lapses_at(attempt.created_at):%H:%M} UTC"),
            ("Provider", f"{attempt.provider.value.title()}  refund {attempt.attempt_id[:8]}"),
        ]  # fmt: skip
        if view is not None:
            payment = view.payment
            rows += [("Payment", f"{payment.reference}  ({payment.amount})"), ("Customer", payment.customer_name)]
            phone = attempt.phone if attempt.phone == payment.customer_phone else (
                f"{attempt.phone}  NOT the payer's number ({payment.customer_phone})")
        else:
            rows.append(("Payment", f"{attempt.payment_reference} (not readable now)"))
            phone = attempt.phone
        rows += [("Phone", phone), ("Amount", Text(attempt.amount.format(), style="bold"))]
        if view is not None:
            rows.append(("Balance after", view.refundable.format()))
        rows.append(("Reason", attempt.reason))
        for label, value in rows:  # Text: a value is never read as markup
            facts.add_row(label, value if isinstance(value, Text) else Text(printable(value)))
        return facts

    async def _send_now(self) -> Attempt:
        return await self.app.service.approve(self.attempt.attempt_id)


class ApprovalsScreen(Screen):
    """Other roles' refunds waiting for this role's approval, oldest first."""

    BINDINGS = bindings("approvals")
    DEFAULT_CSS = """
    ApprovalsScreen #approvals-help { height: auto; padding: 0 1; }
    ApprovalsScreen DataTable { height: 1fr; }
    ApprovalsScreen #approvals-detail { height: auto; max-height: 4; padding: 0 1; }
    """

    class Loaded(Message):
        def __init__(self, queue: Queue) -> None:
            super().__init__()
            self.queue = queue

    def __init__(self, read: Callable[[Ledger], Queue] = read_queue) -> None:
        super().__init__()
        self.queue: Queue | None = None
        self._read = read

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static("Reading the approvals queue...", markup=False, id="approvals-help")
        yield DataTable(cursor_type="row", id="approvals-table")
        yield Static("", markup=False, id="approvals-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, title in COLUMNS:
            table.add_column(title, key=key)
        table.focus()
        self.load()

    @work(exclusive=True, exit_on_error=False, group="approvals-read", description="read approvals")
    async def load(self) -> None:
        self.post_message(self.Loaded(await asyncio.to_thread(self._read, self.app.service.ledger)))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        kept = self._highlighted()  # a re-read never moves the cursor to another refund
        queue = self.queue = message.queue
        table = self.query_one(DataTable)
        table.clear()
        for attempt in queue.waiting:
            reason = printable(attempt.reason)
            table.add_row(
                f"{attempt.created_at:%m-%d %H:%M}", Text(printable(attempt.recorded_by or "?")),
                Text(printable(attempt.payment_reference)), Text(attempt.amount.format(), justify="right"),
                Text(reason if len(reason) <= REASON_WIDTH else reason[: REASON_WIDTH - 1] + "~"),
                key=attempt.attempt_id,
            )  # fmt: skip
        if kept is not None and kept.attempt_id in table.rows:
            table.move_cursor(row=table.get_row_index(kept.attempt_id))
        if queue.role is None:
            head = "Approvals need a team ledger (PostgreSQL): this profile keeps its ledger in a file."
        elif not queue.may_approve:
            head = f"Role {queue.role} does not hold refund_tui_approver: nothing waits for you."
        else:
            head = f"{len(queue.waiting)} refund(s) await your approval (enter: approve, d: deny)."
        mine = f" Yours awaiting another approver: {queue.mine}." if queue.mine else ""
        self.query_one("#approvals-help", Static).update(f"{head}{mine}\nRules: {'; '.join(queue.rules.lines())}")
        self._detail()

    def _highlighted(self) -> Attempt | None:
        table = self.query_one(DataTable)
        if self.queue is None or not self.queue.waiting or table.cursor_row < 0:
            return None
        return self.queue.waiting[min(table.cursor_row, len(self.queue.waiting) - 1)]

    @on(DataTable.RowHighlighted)
    def _detail(self) -> None:
        attempt = self._highlighted()
        text = "" if attempt is None else (
            f"{attempt.attempt_id[:8]} {attempt.provider.value} {attempt.amount.format()} to {attempt.phone}, "
            f"asked by {requester(attempt)}: {attempt.reason}")  # fmt: skip
        self.query_one("#approvals-detail", Static).update(printable(text))

    @on(LedgerChanged)
    def _ledger_changed(self) -> None:
        self.load()

    def action_refresh_now(self) -> None:
        self.load()

    def action_approve(self) -> None:
        attempt = self._highlighted()
        if attempt is not None:
            self.confirm(attempt)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_approve()

    @work(exclusive=True, exit_on_error=False, group="approvals-lookup", description="read the payment")
    async def confirm(self, attempt: Attempt) -> None:
        """Read the payment now (customer, balance), then ask for the typed amount."""
        service = self.app.service
        try:
            view = await service.lookup(attempt.provider, attempt.payment_reference)
        except ProviderError:
            view = None
        live = self.app.session.profile.is_live
        self.app.push_screen(ApproveScreen(attempt, view, self.queue.rules, live=live))

    def action_deny(self) -> None:
        attempt = self._highlighted()
        if attempt is None:
            return
        prompt = (f"Deny {attempt.amount.format()} to {attempt.phone} asked by {requester(attempt)}: "
                  "say why (kept in the ledger, shown to the requester). esc: keep it waiting")  # fmt: skip
        self.app.push_screen(NoteScreen(prompt, "e.g. no ticket for this refund"),
                             lambda reason: reason and self.deny(attempt, reason))  # fmt: skip

    @work(exit_on_error=False, group="approvals-deny", description="deny refund")
    async def deny(self, attempt: Attempt, reason: str) -> None:
        denied = await self.app.service.deny(attempt.attempt_id, reason)
        self.notify(f"Denied {denied.amount} to {denied.phone}: never sent.", title="Approvals", markup=False)
        self.app.tracked_changes()

    @on(Worker.StateChanged)
    def _failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.group.startswith("approvals"):
            self.notify(describe_error(event.worker.error), title="Approvals", severity="error", markup=False)

    def action_back(self) -> None:
        self.app.pop_screen()
