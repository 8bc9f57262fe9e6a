"""The live status board: every refund in the ledger, newest first, updated in place.

The app polls the refunds in flight in the background; a timer (the app's
``refresh_interval``, never under 2 s) starts an exclusive worker that reads the ledger and
posts what it read; the handler diffs the rows into the table by attempt id inside ``batch_update()`` (update changed
cells, add new rows, remove stale ones), so the cursor and the scroll position stay put.

At most ``ROW_LIMIT`` rows are shown: the newest ones of the current view. A text filter
searches the whole ledger and shows the newest matches. A failed refund that was retried is
marked "retried" and left out of the failed view, as the banner leaves it out of its count.
Under the table, the highlighted refund's payment, reference and reason are written out in
full: at 80 columns the table can only show the start of them. Failed and unknown refunds
are selected in the table itself for bulk triage (``screens.triage.BoardSelection``): a
``*`` in the first column marks a selected row.

Triage as a team: who made each refund (the database role on a team ledger, the OS account
on a solo one) is in the "By" column after the reason (at 80 columns, on the line under the
table); a refund someone is on starts its reason with "@name"; ``w`` shows only mine, and
``by:NAME`` in the filter someone else's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import ColumnKey, RowKey
from textual.worker import Worker, WorkerState

from refund_tui.core.ledger import Attempt, Ledger, TriageEntry, made_by, whoami
from refund_tui.core.models import RefundStatus
from refund_tui.core.text import printable
from refund_tui.tui.keys import bindings
from refund_tui.tui.messages import LedgerChanged, describe_error
from refund_tui.tui.screens.claims import TriageKeys
from refund_tui.tui.screens.details import DetailsScreen, still_running
from refund_tui.tui.screens.triage import BoardSelection
from refund_tui.tui.widgets.banner import Banner
from refund_tui.tui.widgets.footer import KeyFooter
from refund_tui.tui.widgets.status import IN_FLIGHT, RETRIED_LABEL, attempt_status, counts_text, row_style

#: Most rows on the board at once (the newest of the current view or filter).
ROW_LIMIT = 2_000
#: Rows of the very first paint; the rest follow straight after, below them.
FIRST_PAINT_ROWS = 100
#: Quiet time after a keystroke in the filter before the board is searched.
FILTER_DELAY = 0.25


class View(StrEnum):
    ALL = "all"
    FAILED = "failed"
    IN_FLIGHT = "in_flight"


VIEW_STATUSES: dict[View, Collection[RefundStatus] | None] = {
    View.ALL: None,
    View.FAILED: (RefundStatus.FAILED,),
    View.IN_FLIGHT: tuple(IN_FLIGHT),
}
VIEW_TITLES = {View.ALL: "All refunds", View.FAILED: "Failed", View.IN_FLIGHT: "In flight"}


class SortOrder(StrEnum):
    TIME = "time"
    AMOUNT = "amount"
    STATUS = "status"

    def next(self) -> SortOrder:
        members = list(SortOrder)
        return members[(members.index(self) + 1) % len(members)]


SORT_TITLES = {
    SortOrder.TIME: "newest first",
    SortOrder.AMOUNT: "largest amount first",
    SortOrder.STATUS: "needs attention first",
}
#: Status sort: what an operator must act on comes first.
STATUS_RANK = {
    status: rank
    for rank, status in enumerate(
        (
            RefundStatus.UNKNOWN,
            RefundStatus.FAILED,
            RefundStatus.REVERSED,
            RefundStatus.AWAITING_APPROVAL,
            RefundStatus.PENDING,
            RefundStatus.PROCESSING,
            RefundStatus.COMPLETED,
            RefundStatus.DENIED,
            RefundStatus.CANCELLED,
        )
    )
}

#: Longest reason or failure text in a cell; the details screen has all of it.
REASON_WIDTH = 40
#: Longest name in the "By" column (the line under the table has all of it).
NAME_WIDTH = 12
#: A filter term naming whose refunds to show, e.g. ``by:kofi``.
BY_PREFIX = "by:"
#: (column key, title); status, payment, amount and failure come first so they show at 80
#: columns (the line under the table writes the highlighted one out in full, who made it too).
COLUMNS = (
    ("time", "Time UTC"),
    ("status", "Status"),
    ("payment", "Payment"),
    ("amount", "Amount"),
    ("reason", "Reason / failure"),
    ("by", "By"),
    ("provider", "Provider"),
    ("reference", "Refund ref"),
)
COLUMN_KEYS = tuple(key for key, _ in COLUMNS)
#: The first column: ``*`` on a row selected for a bulk action.
MARK_COLUMN = "mark"


@dataclass(frozen=True, slots=True)
class BoardQuery:
    """What the operator asked the board to show."""

    view: View = View.ALL
    text: str = ""
    sort: SortOrder = SortOrder.TIME
    #: My name as the ledger knows me, when only my refunds are shown.
    mine: str | None = None

    @property
    def terms(self) -> list[str]:
        return [term for term in self.text.lower().split() if not term.startswith(BY_PREFIX)]

    @property
    def made_by(self) -> str | None:
        """Whose refunds to show: ``by:NAME`` in the filter, else mine when asked, else all."""
        named = [word[len(BY_PREFIX):] for word in self.text.split() if word.lower().startswith(BY_PREFIX)]
        return named[-1] if named and named[-1] else self.mine


@dataclass(frozen=True, slots=True)
class BoardData:
    """One read of the ledger for a query."""

    query: BoardQuery
    attempts: list[Attempt]
    matched: int
    counts: dict[RefundStatus, int]
    at: datetime
    limit: int
    #: Ids of the failed attempts that were retried.
    retried: frozenset[str] = frozenset()
    #: Attempt id -> the claim on it, for every attempt someone is on.
    claims: Mapping[str, TriageEntry] = field(default_factory=dict)


def matches(attempt: Attempt, terms: Sequence[str]) -> bool:
    """True when every term is in the payment, references, phone, reason, status or provider."""
    haystack = " ".join(
        (
            attempt.attempt_id,
            attempt.payment_reference,
            attempt.provider_reference or "",
            attempt.phone,
            attempt.reason,
            attempt.failure_reason or "",
            attempt.status.value,
            attempt.provider.value,
        )
    ).lower()
    return all(term in haystack for term in terms)


def sort_attempts(attempts: list[Attempt], order: SortOrder) -> list[Attempt]:
    """Order rows that arrive newest first; ties stay newest first."""
    if order is SortOrder.AMOUNT:
        return sorted(attempts, key=lambda a: (a.amount.currency, -a.amount.minor))
    if order is SortOrder.STATUS:
        return sorted(attempts, key=lambda a: STATUS_RANK[a.status])
    return attempts


def read_board(
    ledger: Ledger, query: BoardQuery, at: datetime, limit: int = ROW_LIMIT
) -> BoardData:
    """Read the newest ``limit`` rows for ``query`` (blocking: run it in a thread)."""
    statuses = VIEW_STATUSES[query.view]
    counts = ledger.counts()
    retried = frozenset(ledger.retried_ids())
    hidden = retried if query.view is View.FAILED else frozenset()
    if query.terms:
        found = [
            a
            for a in ledger.attempts(statuses=statuses, made_by=query.made_by)
            if a.attempt_id not in hidden and matches(a, query.terms)
        ]
        matched, attempts = len(found), found[:limit]
    else:
        read = ledger.attempts(statuses=statuses, made_by=query.made_by, limit=limit + len(hidden))
        attempts = [a for a in read if a.attempt_id not in hidden][:limit]
        scoped = counts if query.made_by is None else ledger.counts(made_by=query.made_by)
        matched = sum(n for status, n in scoped.items() if statuses is None or status in statuses)
    attempts = sort_attempts(attempts, query.sort)
    return BoardData(query, attempts, matched, counts, at, limit, retried, ledger.claims())


def scope_line(data: BoardData) -> str:
    """What the table holds: view, filter, order and how many rows of how many."""
    query = data.query
    parts = [VIEW_TITLES[query.view]]
    if query.made_by:
        parts.append("mine" if query.made_by == query.mine else f"by {printable(query.made_by)}")
    if query.terms:
        parts.append(f'matching "{query.text.strip()}"')
    parts.append(SORT_TITLES[query.sort])
    shown = len(data.attempts)
    if data.matched > shown:
        parts.append(f"{shown:,} of {data.matched:,} (/ searches all)")
    else:
        parts.append(f"{shown:,} shown")
    return " | ".join(parts)


class RowText(Text):
    """A row's first cell; it carries the row key so ``DataTable.sort`` can order rows by key."""

    def __init__(self, text: str, *, style: str, row_key: str) -> None:
        super().__init__(text, style=style)
        self.row_key = row_key


def shown_reason(attempt: Attempt) -> str:
    """The failure of a failed or reversed refund, else the reason it was made."""
    failed = attempt.status in (RefundStatus.FAILED, RefundStatus.REVERSED)
    return attempt.failure_reason if failed and attempt.failure_reason else attempt.reason


def row_cells(attempt: Attempt, retried: bool = False, claim: TriageEntry | None = None) -> tuple[Text, ...]:
    """The board's cells for one attempt; failed, unknown and reversed rows are painted whole,
    unless the failure was retried (then it reads "retried", quietly). A refund someone is on
    starts its reason with "@name"."""
    style = "dim" if retried else row_style(attempt.status)
    status = Text(RETRIED_LABEL, style="dim") if retried else None
    reason = Text(_clip(printable(shown_reason(attempt)), REASON_WIDTH), style=style)
    if claim is not None:
        reason = Text.assemble((f"@{_clip(printable(claim.who), NAME_WIDTH)}", "bold reverse"), " ", reason)
    return (
        RowText(
            f"{attempt.created_at.astimezone(UTC):%m-%d %H:%M}",
            style=style,
            row_key=attempt.attempt_id,
        ),
        status or attempt_status(attempt),
        Text(printable(attempt.payment_reference), style=style),
        Text(attempt.amount.format(), style=style, justify="right"),
        reason,
        Text(_clip(printable(made_by(attempt)), NAME_WIDTH), style=style),
        Text(attempt.provider.value, style=style),
        Text(printable(attempt.provider_reference or "-"), style=style),
    )


def detail_line(attempt: Attempt, retried: bool, claim: TriageEntry | None = None) -> Text:
    """The highlighted refund written out in full (the table clips it at 80 columns)."""
    parts = [
        f"{printable(attempt.payment_reference)} ({attempt.provider.value})",
        f"ref {printable(attempt.provider_reference or 'none yet')}",
        attempt.amount.format(),
        f"by {printable(made_by(attempt))}",
    ]
    if claim is not None:
        parts.append(f"on it: {printable(claim.who)}")
    if retried:
        parts.append("failed, retried")
    line = Text(" | ".join(parts) + ": ", style="bold")
    line.append(printable(shown_reason(attempt)), style="")
    return line


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _same(one: Text, other: Text) -> bool:
    return one.plain == other.plain and one.style == other.style


def _state(attempt: Attempt, retried: bool, claim: TriageEntry | None) -> tuple:
    """What can change on an attempt once recorded (the rest of it never changes)."""
    on_it = claim.who if claim else None
    return (attempt.status, attempt.flagged, attempt.provider_reference, attempt.failure_reason, retried, on_it)


class BoardTable(DataTable):
    """The board's table: rows keyed by attempt id, updated in place."""

    def __init__(self) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, id="board-table")
        #: attempt id -> (state shown, cells shown)
        self.shown: dict[str, tuple[tuple, tuple[Text, ...]]] = {}
        self.order: list[str] = []
        #: Ids of the rows selected for a bulk action (``screens.triage.BoardSelection``).
        self.selected: set[str] = set()

    def on_mount(self) -> None:
        self.add_column(" ", key=MARK_COLUMN)
        for key, title in COLUMNS:
            self.add_column(title, key=key)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Widen the columns for new rows by their cells' lengths, then let DataTable size
        the table.

        Every cell here is one line of ``Text`` in a row one line high, so its width is its
        cell length. DataTable measures each new cell through the console instead, which
        took twice as long as adding the rows on a board of 2,000 (Textual 8.2.8;
        ``test_board_column_widths_as_datatable_measures`` catches a change).
        """
        columns = self.ordered_columns
        for row_key in new_rows:
            cells = self._data.get(row_key)
            if cells is None:  # removed before the table went idle
                continue
            for column in columns:
                width = cells[column.key].cell_len
                if width > column.content_width:
                    column.content_width = width
        super()._update_dimensions(())

    def action_select_cursor(self) -> None:
        """Enter on a row; on an empty table it goes on to the screen (``open_details``)."""
        if not self.row_count:
            raise SkipAction()
        super().action_select_cursor()

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def show(
        self,
        attempts: Sequence[Attempt],
        retried: Collection[str] = (),
        claims: Mapping[str, TriageEntry] | None = None,
    ) -> int:
        """Make the table show ``attempts`` in this order; returns how many cells changed.

        Rows are built only for new attempts or attempts whose state changed. Call it inside
        ``App.batch_update()``.
        """
        wanted = [attempt.attempt_id for attempt in attempts]
        shown_next = set(wanted)
        self.selected &= shown_next  # a row no longer shown is never acted on
        keep = self.highlighted_key
        stale = self.shown.keys() - shown_next
        if len(stale) > len(self.shown) // 2:
            self.clear()
            self.shown, self.order = {}, []
        else:
            for key in stale:
                self.remove_row(key)
                del self.shown[key]
            self.order = [key for key in self.order if key not in stale]
        changed = 0
        claims = claims or {}
        for attempt in attempts:
            key = attempt.attempt_id
            state = _state(attempt, key in retried, claims.get(key))
            before = self.shown.get(key)
            if before is not None and before[0] == state:
                continue
            cells = row_cells(attempt, key in retried, claims.get(key))
            if before is None:
                self.add_row(self.mark(key), *cells, key=key)
                self.order.append(key)
                changed += len(cells)
            else:
                changed += self._update_row(key, cells, before[1])
            self.shown[key] = (state, cells)
        if self.order != wanted:
            rank = {key: index for index, key in enumerate(wanted)}
            self.sort("time", key=lambda cell: rank[cell.row_key])
            self.order = wanted
        if keep in self.shown:
            self.move_cursor(row=self.get_row_index(keep), scroll=False)
        return changed

    def mark(self, key: str) -> Text:
        """The selection column's cell: ``*`` on a selected row (readable without colour)."""
        return Text("*" if key in self.selected else " ", style="bold")

    def select(self, keys: Iterable[str], selected: bool) -> None:
        """Select or unselect rows shown, their mark updated."""
        for key in keys:
            if key in self.shown:
                (self.selected.add if selected else self.selected.discard)(key)
                self.update_cell(key, MARK_COLUMN, self.mark(key))

    def _update_row(self, key: str, cells: tuple[Text, ...], before: tuple[Text, ...]) -> int:
        """Update the cells that differ; widen a column only when a cell outgrows it."""
        changed = 0
        for column, new, old in zip(COLUMN_KEYS, cells, before, strict=True):
            if not _same(new, old):
                grows = new.cell_len > self.columns[ColumnKey(column)].content_width
                self.update_cell(key, column, new, update_width=grows)
                changed += 1
        return changed


class BoardScreen(TriageKeys, BoardSelection, Screen):
    """Every refund in the ledger, live; failed and unknown ones selected for bulk triage."""

    BINDINGS = bindings("board")
    DEFAULT_CSS = """
    BoardScreen #board-counts { height: 1; padding: 0 1; }
    BoardScreen #board-bar { height: 1; padding: 0 1; }
    BoardScreen #board-scope {
        width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis;
    }
    BoardScreen #board-clock { width: auto; margin-left: 1; }
    BoardScreen #board-clock.-alert { text-style: bold reverse; }
    BoardScreen #board-filter { display: none; }
    BoardScreen #board-filter.-open { display: block; }
    BoardScreen BoardTable { height: 1fr; }
    BoardScreen #board-detail { height: 2; padding: 0 1; background: $boost; }
    BoardScreen #board-selection {
        display: none; height: 1; padding: 0 1; text-style: bold; text-wrap: nowrap; text-overflow: ellipsis;
    }
    BoardScreen #board-selection.-on { display: block; }
    """

    class Loaded(Message):
        """A worker read the ledger for the board."""

        def __init__(self, data: BoardData) -> None:
            super().__init__()
            self.data = data

    def __init__(self) -> None:
        super().__init__()
        self.query_state = BoardQuery()
        self.paused = False
        self.last_data: BoardData | None = None
        self._timer: Timer
        self._filter_timer: Timer | None = None
        self._error: str | None = None
        self._select: str | None = None
        #: Enter was pressed before the first rows were read: open the top one when they show.
        self._open_when_read = False
        # Styled as it mounts, with the app's current stylesheet. Textual (8.2.8) restyles the
        # whole app, twice, when a mode's first screen has not seen the app's latest CSS: on a
        # large ledger that was half of the board's first paint. A theme changed later, while
        # the board is hidden, still restyles it when shown (test_board_styles).
        self._css_update_count = self.app._css_update_count

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static(id="board-counts")
        with Horizontal(id="board-bar"):
            yield Static(id="board-scope", markup=False)
            yield Static("loading...", id="board-clock", markup=False)
        yield Input(
            placeholder="filter: payment, ref, phone, reason, status, provider, by:NAME (esc clears)",
            compact=True,
            id="board-filter",
        )
        yield BoardTable()
        yield Static(id="board-selection", markup=False)
        yield Static(id="board-detail", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.app.refresh_interval, self._tick, pause=True)
        self.query_one(BoardTable).focus()

    # -- reading --------------------------------------------------------------------------

    def _tick(self) -> None:
        """Read the ledger unless paused or a read is under way: the live timer's tick, and
        the rest of the rows once the first ones are on screen."""
        if not self.paused and not still_running(self, "board-refresh"):
            self.refresh_board()

    @work(exclusive=True, exit_on_error=False, group="board-refresh", description="refresh board")
    async def refresh_board(self, limit: int = ROW_LIMIT) -> None:
        """Read the ledger (the app polls the providers in the background)."""
        service = self.app.service
        data = await asyncio.to_thread(
            read_board, service.ledger, self.query_state, self.app.clock(), limit
        )
        self.post_message(self.Loaded(data))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        data = message.data
        if data.query != self.query_state:
            return
        self.apply(data)
        if data.limit < ROW_LIMIT and data.matched > len(data.attempts):
            self.call_after_refresh(self._tick)

    def apply(self, data: BoardData) -> int:
        """Diff ``data`` into the table and the status lines; returns how many cells changed."""
        self.last_data = data
        self._error = None
        table = self.query_one(BoardTable)
        with self.app.batch_update():
            changed = table.show(data.attempts, data.retried, data.claims)
            self.show_selection()
            if self._select in table.shown:
                table.move_cursor(row=table.get_row_index(self._select))
                self._select = None
            self._show_detail()
            self.query_one("#board-counts", Static).update(counts_text(data.counts))
            self.query_one("#board-scope", Static).update(scope_line(data))
            self._show_clock()
        if self._open_when_read:
            self._open_when_read = False
            self.action_open_details()
        return changed

    def _show_clock(self) -> None:
        """The last-refreshed time, PAUSED when paused, and the last refresh error if any."""
        updated = f"updated {self.last_data.at:%H:%M:%S}" if self.last_data else "loading..."
        if self._error:
            updated = f"REFRESH FAILED ({updated})"
        clock = self.query_one("#board-clock", Static)
        clock.set_class(self.paused or bool(self._error), "-alert")
        clock.update(f"PAUSED ({updated})" if self.paused else updated)

    @on(Worker.StateChanged)
    def _refresh_failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "board-refresh" or event.state is not WorkerState.ERROR:
            return
        message = describe_error(event.worker.error)
        if message != self._error:
            self.notify(
                f"Board refresh failed: {message}", severity="error", timeout=8, markup=False
            )
        self._error = message
        self._show_clock()

    @on(LedgerChanged)
    def _ledger_changed(self, message: LedgerChanged) -> None:
        """A refund was made or statuses changed: show it now (unless paused)."""
        if message.attempt_id is not None:
            self._select = message.attempt_id
        if not self.paused:
            self.refresh_board()

    # -- keeping the board live while it is not on top --------------------------------------

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    def on_screen_resume(self) -> None:
        """Show the ledger at once (polling only once the board has painted), then go live."""
        if self.paused:
            return
        self._timer.resume()
        if self.last_data is None:
            self.refresh_board(limit=FIRST_PAINT_ROWS)
        else:
            self.refresh_board()

    # -- actions ----------------------------------------------------------------------------

    def _requery(self, query: BoardQuery) -> None:
        self.query_state = query
        self.refresh_board()

    def action_quick_filter(self, view: str) -> None:
        self._requery(replace(self.query_state, view=View(view)))

    def action_toggle_mine(self) -> None:
        """Only the refunds I made, or everyone's again."""
        service = self.app.service
        mine = None if self.query_state.mine else whoami(service.ledger, service.operator)
        self._requery(replace(self.query_state, mine=mine))

    def triage_target(self) -> tuple[Attempt, TriageEntry | None] | None:
        attempt = self._highlighted()
        return None if attempt is None else (attempt, self.last_data.claims.get(attempt.attempt_id))

    def _highlighted(self) -> Attempt | None:
        key = self.query_one(BoardTable).highlighted_key
        data = self.last_data
        return next((a for a in data.attempts if a.attempt_id == key), None) if data else None

    def action_cycle_sort(self) -> None:
        self._requery(replace(self.query_state, sort=self.query_state.sort.next()))

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self._timer.pause()
            self.workers.cancel_group(self, "board-refresh")
        else:
            self._timer.resume()
            self.refresh_board()
        self._show_clock()

    def action_refresh_now(self) -> None:
        self.app.track_now()
        self.refresh_board()

    def action_filter(self) -> None:
        field = self.query_one("#board-filter", Input)
        field.add_class("-open")
        self.set_focus(field)  # at once: the keys typed right after / go into the field

    def action_open_details(self) -> None:
        if self.last_data is None:  # painted, rows still being read: not lost, acted on then
            self._open_when_read = True
            return
        key = self.query_one(BoardTable).highlighted_key
        if key is not None:
            self.app.push_screen(DetailsScreen(key))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open_details()

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        """Write the highlighted refund out in full under the table."""
        detail = self.query_one("#board-detail", Static)
        attempt = self._highlighted()
        if attempt is None:
            detail.update("")
        else:
            key = attempt.attempt_id
            detail.update(detail_line(attempt, key in self.last_data.retried, self.last_data.claims.get(key)))

    # -- the filter field ---------------------------------------------------------------------

    @on(Input.Changed, "#board-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        text = event.value
        if text == self.query_state.text:
            return
        self._filter_timer = self.set_timer(
            FILTER_DELAY, lambda: self._requery(replace(self.query_state, text=text))
        )

    @on(Input.Submitted, "#board-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._requery(replace(self.query_state, text=event.value))
        if not event.value.strip():
            event.input.remove_class("-open")
        self.query_one(BoardTable).focus()

    def action_close_filter(self) -> None:
        """Clear the filter text and hide the field."""
        field = self.query_one("#board-filter", Input)
        field.value = ""
        field.remove_class("-open")
        self._requery(replace(self.query_state, text=""))
        self.query_one(BoardTable).focus()
