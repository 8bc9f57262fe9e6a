"""Batch refunds from a CSV file: read it, check every row as a single refund is checked,
then send each row at most once, however often the file is run.

- Every row goes through ``RefundService.lookup`` and ``prepare``, like a refund typed by
  hand; the balance of a payment counts the earlier rows of the same file.
- A file is identified by the hash of its rows as read (``batch_id``), so a copy saved with
  another delimiter, a BOM or other line endings is the same batch. Each row's attempt is
  recorded with its (batch, row) in the transaction that records the intent: running the
  file again, or resuming it after a kill, sends no row twice.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from refund_tui.core.backoff import read_with_backoff
from refund_tui.core.ledger import Attempt, BatchRow, BatchRowRecorded, CapExceeded, LedgerError
from refund_tui.core.models import ProviderError, ProviderName, RefundStatus
from refund_tui.core.money import Money, MoneyError
from refund_tui.core.service import (
    OutcomeUnknown,
    PaymentView,
    PreparedRefund,
    RefundNotAllowed,
    RefundService,
    ResendEvidence,
    TrailLost,
)
from refund_tui.core.text import is_printable, printable
from refund_tui.core.validation import RefundInvalid, check_amount

REQUIRED_COLUMNS = ("provider", "payment", "amount", "reason")
OPTIONAL_COLUMNS = ("phone", "country", "webhook_url")
MAX_BYTES = 5_000_000
MAX_ROWS = 10_000
MAX_FIELD = 1_000
PROVIDERS = frozenset(name.value for name in ProviderName)


class BatchFileError(ValueError):
    """The file cannot be read as a batch; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One data row as written in the file (fields stripped); ``row`` counts from 1."""

    row: int
    provider: str
    payment: str
    amount: str
    reason: str
    phone: str = ""
    country: str = ""
    webhook_url: str = ""
    #: Why the row cannot be read at all (wrong number of fields, a field too long).
    unreadable: str | None = None


@dataclass(frozen=True, slots=True)
class BatchFile:
    path: Path
    batch_id: str
    delimiter: str
    lines: tuple[BatchLine, ...]

    @property
    def results_path(self) -> Path:
        """``refunds.csv`` -> ``refunds.results.csv``."""
        stem = self.path.name[: -len(".csv")] if self.path.name.lower().endswith(".csv") else self.path.name
        return self.path.with_name(f"{stem}.results.csv")


def read_batch(path: Path) -> BatchFile:
    """Read and check the file's shape (not its rows); BatchFileError with one clear line."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise BatchFileError(f"cannot read {path}: {error.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise BatchFileError(f"{path} is over {MAX_BYTES // 1_000_000} MB: split it")
    return parse_batch(path, raw)


def parse_batch(path: Path, raw: bytes) -> BatchFile:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise BatchFileError(
            f"{path.name} is not UTF-8 (line {line}, byte {error.start}): save it as CSV UTF-8"
        ) from None
    if "\x00" in text:
        raise BatchFileError(f"{path.name} is not a text file")
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip().lower() for name in next(records, [])]
        columns = _check_header(header)
        lines = []
        for number, record in enumerate(records, start=1):
            if not any(value.strip() for value in record):
                continue  # an empty row (spreadsheets leave them): numbered, ignored
            if len(lines) >= MAX_ROWS:
                raise BatchFileError(f"{path.name} has over {MAX_ROWS:,} rows: split it")
            lines.append(_line(number, record, columns, delimiter))
    except csv.Error as error:
        raise BatchFileError(f"{path.name} is not well-formed CSV ({error})") from None
    if not lines:
        raise BatchFileError(f"{path.name} has a header but no rows")
    return BatchFile(path, _batch_id(lines), delimiter, tuple(lines))


def _check_header(header: list[str]) -> list[str]:
    expected = ",".join(REQUIRED_COLUMNS) + "[," + ",".join(OPTIONAL_COLUMNS) + "]"
    if not any(header):
        raise BatchFileError(f"the file is empty: its first line must be the header {expected}")
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise BatchFileError(f"unknown column {unknown[0][:40]!r}: the header is {expected}")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise BatchFileError(f"the header lacks {', '.join(missing)}: it is {expected}")
    if len(set(header)) != len(header):
        raise BatchFileError("a column appears twice in the header")
    return header


def _line(number: int, record: list[str], columns: list[str], delimiter: str) -> BatchLine:
    values = dict.fromkeys(REQUIRED_COLUMNS + OPTIONAL_COLUMNS, "")
    problem = None
    if len(record) > len(columns):
        problem = f"{len(record)} fields but the header has {len(columns)}"
    for name, value in zip(columns, record, strict=False):
        values[name] = printable(value).strip()  # what a terminal may show of it
        if not is_printable(value):
            problem = f"{name}: holds control characters or escape sequences"
        elif len(value) > MAX_FIELD:
            problem = f"{name}: over {MAX_FIELD} characters"
    if delimiter == ";" and "," in values["amount"]:
        problem = (
            f"amount: {values['amount'][:20]!r} is ambiguous in a semicolon-separated file "
            "(12,500 may mean 12.5 or 12500): write 12500 or 12.50"
        )
    return BatchLine(number, **values, unreadable=problem)


def _batch_id(lines: list[BatchLine]) -> str:
    rows = [dataclasses.astuple(line) for line in lines]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:32]


# -- checking ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowProblem:
    row: int
    reason: str


@dataclass
class BatchPlan:
    """What a run would do: rows ready to send, rows refused (with why), rows sent before."""

    file: BatchFile
    ready: list[tuple[BatchLine, PreparedRefund]] = field(default_factory=list)
    invalid: list[RowProblem] = field(default_factory=list)
    #: Row -> attempt id, for rows recorded by an earlier run.
    recorded: dict[int, str] = field(default_factory=dict)
    #: Ready rows that repeat an earlier row exactly (sent all the same: often a slip).
    repeats: list[RowProblem] = field(default_factory=list)

    def totals(self) -> dict[str, Money]:
        """The total of the ready rows, per currency."""
        totals: dict[str, Money] = {}
        for _, prepared in self.ready:
            amount = prepared.draft.amount
            totals[amount.currency] = totals.get(amount.currency, Money.zero(amount.currency)) + amount
        return dict(sorted(totals.items()))


async def plan_batch(service: RefundService, batch: BatchFile, concurrency: int = 8) -> BatchPlan:
    """Check every row not yet recorded, in file order; nothing is sent."""
    plan = BatchPlan(batch, recorded=await service.db.batch_attempts(batch.batch_id))
    lines = [line for line in batch.lines if line.row not in plan.recorded]
    views = await _lookups(service, lines, concurrency)
    taken: dict[tuple[ProviderName, str], list[tuple[int, Money]]] = {}
    first_seen: dict[tuple, int] = {}
    for line in lines:
        try:
            prepared = await _check(service, line, views, taken)
        except (RefundInvalid, RefundNotAllowed, ProviderError, LedgerError) as error:
            plan.invalid.append(RowProblem(line.row, str(error)))
            continue
        key = (prepared.draft.payment.provider, prepared.draft.payment.reference)
        taken.setdefault(key, []).append((line.row, prepared.draft.amount))
        batch_row = BatchRow(batch.batch_id, line.row)
        plan.ready.append((line, dataclasses.replace(prepared, batch_row=batch_row)))
        same = (key, prepared.draft.amount, prepared.draft.reason, prepared.phone.e164)
        if same in first_seen:
            plan.repeats.append(RowProblem(line.row, f"repeats row {first_seen[same]} exactly: check it is meant"))
        first_seen.setdefault(same, line.row)
    return plan


async def _lookups(
    service: RefundService, lines: list[BatchLine], concurrency: int
) -> dict[tuple[ProviderName, str], PaymentView | ProviderError]:
    """Each payment the rows name, looked up once (at most ``concurrency`` at a time)."""
    wanted = {
        (ProviderName(line.provider.lower()), line.payment)
        for line in lines
        if line.provider.lower() in PROVIDERS and line.unreadable is None
    }
    gate = asyncio.Semaphore(concurrency)

    async def lookup(key: tuple[ProviderName, str]) -> PaymentView | ProviderError:
        async with gate:
            try:
                return await read_with_backoff(lambda: service.lookup(*key))
            except ProviderError as error:
                return error

    keys = sorted(wanted)
    return dict(zip(keys, await asyncio.gather(*map(lookup, keys)), strict=True))


async def _check(service, line: BatchLine, views, taken) -> PreparedRefund:
    """The row as a single refund: RefundInvalid, RefundNotAllowed or ProviderError if not."""
    if line.unreadable:
        raise RefundInvalid({"row": line.unreadable})
    try:
        provider = ProviderName(line.provider.lower())
    except ValueError:
        known = " or ".join(name.value for name in ProviderName)
        raise RefundInvalid({"provider": f"{line.provider[:40]!r} is not a provider ({known})"}) from None
    if not service.provider(provider).sends_phone and (line.phone or line.country):
        raise RefundInvalid({
            "phone" if line.phone else "country":
            f"{provider.value.title()} refunds always go to the paying wallet: leave phone and country empty"
        })  # fmt: skip
    view = views[(provider, line.payment)]
    if isinstance(view, ProviderError):
        raise view
    earlier = taken.get((provider, line.payment), [])
    left = view
    if earlier:
        spent = sum((amount for _, amount in earlier), Money.zero(view.refundable.currency))
        left = dataclasses.replace(view, refundable=max(view.refundable - spent, Money.zero(spent.currency)))
    try:
        return service.prepare(
            left,
            amount=line.amount,
            reason=line.reason,
            phone=line.phone or None,
            country=await service.refund_country(view, line.country or None),
            webhook_url=line.webhook_url,
        )
    except RefundInvalid as error:
        if earlier and "amount" in error.problems and _fits(line.amount, view.refundable):
            rows = ", ".join(str(row) for row, _ in earlier)
            counted = f"rows {rows} of this file are" if len(earlier) > 1 else f"row {rows} of this file is"
            amount = f"{error.problems['amount']} once {counted} counted (same payment)"
            raise RefundInvalid({**error.problems, "amount": amount}) from None
        raise


def _fits(amount: str, refundable: Money) -> bool:
    """True when the amount alone is a valid refund of ``refundable``."""
    try:
        check_amount(amount, refundable)
    except MoneyError:
        return False
    return True


# -- rows of unknown outcome at a keyless provider ---------------------------------------


@dataclass(frozen=True, slots=True)
class UnknownRow:
    """A row recorded by an earlier run whose keyless (Vesicash) request may or may not have
    left, with what ``refund-tui resend`` shows about it now (``evidence.refusal``: why not)."""

    row: int
    evidence: ResendEvidence

    @property
    def resendable(self) -> bool:
        return self.evidence.refusal is None


async def unknown_rows(service: RefundService, plan: BatchPlan, concurrency: int = 8) -> list[UnknownRow]:
    """The file's recorded rows at a keyless provider with no known outcome, in row order.

    Each is first resolved from its payment record as ``recover`` does (a read: a keyless
    request is never resent here), then checked as ``refund-tui resend`` checks it. Nothing
    is sent."""
    rows = {}
    for row, attempt_id in plan.recorded.items():
        attempt = await service.db.get(attempt_id)
        if (attempt.provider_reference is None and not attempt.status.is_terminal
                and not service.provider(attempt.provider).idempotent):  # fmt: skip
            rows[attempt_id] = row
    if rows:
        await service.recover(set(rows))
    gate = asyncio.Semaphore(concurrency)

    async def check(attempt_id: str) -> ResendEvidence:
        async with gate:
            return await service.resend_evidence(attempt_id)

    found = await asyncio.gather(*map(check, rows))
    unknown = [
        UnknownRow(rows[evidence.attempt.attempt_id], evidence)
        for evidence in found
        if evidence.attempt.status is RefundStatus.UNKNOWN and evidence.attempt.provider_reference is None
    ]
    return sorted(unknown, key=lambda unknown_row: unknown_row.row)


async def resend_rows(
    service: RefundService,
    rows: list[UnknownRow],
    on_result: Callable[[RowResult], None] = lambda result: None,
) -> list[RowResult]:
    """Resend each row's stored request on the operator's decision, one after another; the
    evidence is read again for each just before (``RefundService.resend``), and a row it no
    longer allows is reported, not sent."""
    results = []
    for unknown in rows:
        attempt_id = unknown.evidence.attempt.attempt_id
        try:
            attempt = await service.resend(attempt_id)
            result = RowResult(unknown.row, attempt, True, "resent on the operator's decision")
        except TrailLost:
            raise
        except OutcomeUnknown as error:
            result = RowResult(unknown.row, await service.db.get(attempt_id), True, str(error))
        except (RefundNotAllowed, ProviderError, LedgerError) as error:
            result = RowResult(unknown.row, await service.db.get(attempt_id), False, str(error))
        on_result(result)
        results.append(result)
    return results


# -- sending ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowResult:
    """What became of one row in this run. ``attempt`` is None when nothing was recorded."""

    row: int
    attempt: Attempt | None
    sent_now: bool
    detail: str

    @property
    def status(self) -> str:
        return self.attempt.status.value if self.attempt else "skipped"


@dataclass
class Progress:
    """Counts while a batch is sent, for a progress line."""

    total: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    unknown: int = 0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate else None

    def line(self) -> str:
        """"sending: 12/40 done, 1 failed or refused, 0 unknown  35.2 rows/s  about 1 s left"."""
        left = self.seconds_left
        eta = f"  about {left:.0f} s left" if left is not None and self.done < self.total else ""
        return (
            f"sending: {self.done}/{self.total} done, {self.failed} failed or refused, "
            f"{self.unknown} unknown  {self.rate:.1f} rows/s{eta}"
        )


@dataclass
class BatchRun:
    results: list[RowResult]
    #: Set when the ledger itself went away: what to keep to trace the row's refund.
    trail_lost: TrailLost | None = None

    def sent(self) -> list[RowResult]:
        return [result for result in self.results if result.sent_now]

    def already_sent(self) -> list[RowResult]:
        return [result for result in self.results if result.attempt and not result.sent_now]

    def skipped(self) -> list[RowResult]:
        return [result for result in self.results if result.attempt is None]


async def run_batch(
    service: RefundService,
    plan: BatchPlan,
    *,
    concurrency: int = 8,
    on_progress: Callable[[Progress], None] = lambda progress: None,
    on_result: Callable[[RowResult], None] = lambda result: None,
) -> BatchRun:
    """Send every ready row once, at most ``concurrency`` at a time (the rows of one payment in
    file order, one after another); one row's failure never stops the others. Rows recorded by an earlier run are not sent again: those whose answer
    never came (a run killed half-way) are resolved as ``recover`` would, never with a new key."""
    earlier = {row: await service.db.get(attempt_id) for row, attempt_id in plan.recorded.items()}
    cut_short = {a.attempt_id for a in earlier.values() if a.provider_reference is None and not a.status.is_terminal}
    if cut_short:
        await service.recover(cut_short)
    results = [
        RowResult(row, await service.db.get(attempt.attempt_id), False, "sent by an earlier run")
        for row, attempt in earlier.items()
    ]
    results += [RowResult(problem.row, None, False, problem.reason) for problem in plan.invalid]
    progress = Progress(total=len(plan.ready))
    gate = asyncio.Semaphore(concurrency)
    run = BatchRun(results)

    async def send(line: BatchLine, prepared: PreparedRefund) -> RowResult:
        async with gate:
            if run.trail_lost is not None:
                return RowResult(line.row, None, False, "not sent: the ledger went away")
            result = await _send_row(service, line, prepared)
        if isinstance(result, TrailLost):
            run.trail_lost = result
            return RowResult(line.row, result.attempt, True, str(result))
        progress.done += 1
        status = result.attempt.status if result.attempt else None
        progress.failed += status is RefundStatus.FAILED or result.attempt is None
        progress.unknown += status is RefundStatus.UNKNOWN
        on_progress(progress)
        on_result(result)
        return result

    async def send_in_turn(rows: list[tuple[BatchLine, PreparedRefund]]) -> list[RowResult]:
        """The rows of one payment, one after another: the ledger refuses a refund while
        another of the same payment has no known outcome yet."""
        return [await send(line, prepared) for line, prepared in rows]

    by_payment: dict[tuple[ProviderName, str], list[tuple[BatchLine, PreparedRefund]]] = {}
    for line, prepared in plan.ready:
        payment = prepared.draft.payment
        by_payment.setdefault((payment.provider, payment.reference), []).append((line, prepared))
    on_progress(progress)
    for sent in await asyncio.gather(*map(send_in_turn, by_payment.values())):
        results += sent
    results.sort(key=lambda result: result.row)
    return run


async def _send_row(service: RefundService, line: BatchLine, prepared: PreparedRefund) -> RowResult | TrailLost:
    try:
        attempt = await service.submit(prepared)
    except BatchRowRecorded as error:  # another run of the same file got there first
        return RowResult(line.row, await service.db.get(error.attempt_id), False, "sent by another run")
    except TrailLost as error:
        return error
    except OutcomeUnknown as error:
        return RowResult(line.row, await service.db.get(error.attempt.attempt_id), True, str(error))
    except (CapExceeded, RefundNotAllowed, ProviderError, LedgerError) as error:
        return RowResult(line.row, None, False, f"not sent: {error}")
    detail = attempt.failure_reason or ("" if attempt.status is not RefundStatus.UNKNOWN else
                                        "outcome unknown: run `refund-tui recover`")
    return RowResult(line.row, attempt, True, detail)


RESULT_COLUMNS = (
    "row", "provider", "payment", "amount", "currency", "attempt", "provider_reference",
    "status", "detail",
)  # fmt: skip


def write_results(path: Path, plan: BatchPlan, run: BatchRun) -> None:
    """One line per row: its attempt, the provider's reference and status; written whole,
    then renamed over the old one, so a reader never sees half a file."""
    lines = {line.row: line for line in plan.file.lines}
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(RESULT_COLUMNS)
        for result in run.results:
            line, attempt = lines[result.row], result.attempt
            writer.writerow([
                result.row,
                attempt.provider.value if attempt else line.provider,
                attempt.payment_reference if attempt else line.payment,
                attempt.amount.plain() if attempt else line.amount,
                attempt.amount.currency if attempt else "",
                attempt.attempt_id if attempt else "",
                (attempt.provider_reference or "") if attempt else "",
                result.status,
                result.detail,
            ])  # fmt: skip
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
