"""Moving a solo SQLite ledger into the team ledger (``refund-tui ledger import``).

Every attempt keeps its id, request, operator and timestamps; its events, notices, double
refunds, batch rows, finding acknowledgements, claims and notes keep their order and
timestamps (their row numbers are the team ledger's). Importing is one
transaction and idempotent: an attempt already there with the same contents is skipped (new
events it gained since are appended); one with other contents is a conflict, and any
conflict refuses the whole import with a report. ``recorded_by`` on imported rows names the
login that imported them; the OS account that made each refund stays in its operator columns,
the one that recorded each event in its client columns (so does each claim's and note's; an
imported claim still in force is the importer's). Imported rows join the team ledger's hash
chain as they are inserted (its trigger); the solo chain's hashes stay behind (``ledger
verify`` the file before importing it).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from refund_tui.core.ledger import LedgerError
from refund_tui.ledgers.sql import Connection, moment
from refund_tui.ledgers.sqlite_schema import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION

ATTEMPT_COLUMNS = (
    "attempt_id", "created_at", "profile", "environment", "provider", "payment_reference",
    "amount_minor", "currency", "phone", "country_id", "reason", "webhook_url",
    "idempotency_key", "external_reference", "request_method", "request_path", "request_body",
    "operator_name", "operator_uid", "hostname", "ssh_client", "pid", "app_version", "retry_of",
)  # fmt: skip
EVENT_COLUMNS = (
    "at", "status", "source", "provider_reference", "failure_reason", "raw_code",
    "raw_message", "http_status", "note", "outcome", "client_account", "client_host", "client_ssh",
)  # fmt: skip
NOTICE_COLUMNS = (
    "received_at", "provider", "identity", "event", "refund_reference", "payment_reference",
    "tag", "status", "failure_reason", "outcome", "attempt_id", "body",
)  # fmt: skip
DOUBLE_COLUMNS = ("attempt_id", "found_at", "provider_reference", "second_reference")
BATCH_ROW_COLUMNS = ("batch_id", "row", "attempt_id")
ACK_COLUMNS = (
    "finding_id", "kind", "provider", "payment_reference", "note", "acked_at", "operator_name",
    "hostname",
)  # fmt: skip
#: A claim or note as the client wrote it (``took_over`` is the team ledger's to find).
TRIAGE_COLUMNS = (
    "attempt_id", "at", "action", "note", "operator_name", "operator_uid", "hostname", "ssh_client",
)  # fmt: skip
_TIMES = {"created_at", "at", "received_at", "found_at", "acked_at"}


@dataclass
class ImportReport:
    attempts: int = 0
    events: int = 0
    notices: int = 0
    double_refunds: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"imported {self.attempts} attempts, {self.events} events, {self.notices} notices "
            f"and {self.double_refunds} double refunds; {self.skipped} attempts were already "
            "in the team ledger"
        )


@dataclass(frozen=True)
class SoloLedger:
    attempts: list[tuple]
    events: dict[str, list[tuple]]
    notices: list[tuple]
    double_refunds: list[tuple]
    batch_rows: list[tuple]
    acks: list[tuple]
    triage: list[tuple]


def _normal(columns: tuple[str, ...], row: tuple) -> tuple:
    """A row comparable across databases: timestamps as aware datetimes."""
    return tuple(
        moment(value) if name in _TIMES and value is not None else value
        for name, value in zip(columns, row, strict=True)
    )


def read_solo(path: Path) -> SoloLedger:
    """Everything in an SQLite ledger file, read-only; LedgerError if it is not one."""
    if not path.is_file():
        raise LedgerError(f"no ledger file at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise LedgerError(f"cannot open {path}: {error}") from None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SQLITE_SCHEMA_VERSION:
            raise LedgerError(
                f"{path} is not a refund-tui ledger of this version (schema {version}, expected "
                f"{SQLITE_SCHEMA_VERSION}): open it once with this refund-tui, then import it"
            )

        def table(name: str, columns: tuple[str, ...], key: str = "id") -> list[tuple]:
            query = f"SELECT {', '.join(columns)} FROM {name} ORDER BY {key}"
            return [_normal(columns, row) for row in conn.execute(query)]

        attempts = table("attempts", ATTEMPT_COLUMNS, "seq")
        events: dict[str, list[tuple]] = {}
        for attempt_id, *row in conn.execute(
            f"SELECT attempt_id, {', '.join(EVENT_COLUMNS)} FROM events ORDER BY id"
        ):
            events.setdefault(attempt_id, []).append(_normal(EVENT_COLUMNS, tuple(row)))
        notices = table("notices", NOTICE_COLUMNS)
        doubles = table("double_refunds", DOUBLE_COLUMNS)
        batch_rows = conn.execute(f"SELECT {', '.join(BATCH_ROW_COLUMNS)} FROM batch_rows").fetchall()
        acks = table("finding_acks", ACK_COLUMNS)
        triage = table("triage", TRIAGE_COLUMNS)
    except sqlite3.Error as error:
        raise LedgerError(f"{path} is not a readable refund-tui ledger: {error}") from None
    finally:
        conn.close()
    return SoloLedger(attempts, events, notices, doubles, batch_rows, acks, triage)


def merge(conn: Connection, solo: SoloLedger) -> ImportReport:
    """Write what the team ledger lacks, inside the caller's transaction; LedgerError (nothing
    written) naming every conflict."""
    report = ImportReport()
    for attempt in solo.attempts:
        attempt_id = attempt[0]
        theirs = solo.events.get(attempt_id, [])
        present = conn.execute(
            f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts WHERE attempt_id = ?", (attempt_id,)
        ).fetchone()
        ours = [] if present is None else [
            _normal(EVENT_COLUMNS, row)
            for row in conn.execute(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE attempt_id = ? ORDER BY id",
                (attempt_id,),
            ).fetchall()
        ]  # fmt: skip
        if present is not None and _normal(ATTEMPT_COLUMNS, present) != attempt:
            report.conflicts.append(f"{attempt_id}: the attempt differs")
            continue
        if ours != theirs[: len(ours)]:
            report.conflicts.append(f"{attempt_id}: its events differ")
            continue
        if present is None:
            conn.execute(
                f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})",
                attempt,
            )
            report.attempts += 1
        else:
            report.skipped += 1
        for event in theirs[len(ours):]:
            conn.execute(
                f"INSERT INTO events (attempt_id, {', '.join(EVENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * (len(EVENT_COLUMNS) + 1))})",
                (attempt_id, *event),
            )
            report.events += 1
    for notice in solo.notices:
        provider, identity = notice[1], notice[2]
        present = conn.execute(
            f"SELECT {', '.join(NOTICE_COLUMNS)} FROM notices WHERE provider = ? AND identity = ?",
            (provider, identity),
        ).fetchone()
        if present is None:
            conn.execute(
                f"INSERT INTO notices ({', '.join(NOTICE_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(NOTICE_COLUMNS))})",
                notice,
            )
            report.notices += 1
        elif _normal(NOTICE_COLUMNS, present)[:9] != notice[:9] or present[-1] != notice[-1]:
            report.conflicts.append(f"notice {provider} {identity}: it differs")
    for double in solo.double_refunds:
        known = conn.execute(
            "SELECT 1 FROM double_refunds WHERE attempt_id = ? AND second_reference = ?",
            (double[0], double[3]),
        ).fetchone()
        if not known:
            conn.execute(
                f"INSERT INTO double_refunds ({', '.join(DOUBLE_COLUMNS)}) VALUES (?, ?, ?, ?)", double
            )
            report.double_refunds += 1
    _merge_batch_rows(conn, solo.batch_rows, report)
    _insert_missing(conn, "finding_acks", ACK_COLUMNS, solo.acks)
    _insert_missing(conn, "triage", TRIAGE_COLUMNS, solo.triage)
    if report.conflicts:
        raise LedgerError(
            f"nothing imported: {len(report.conflicts)} conflict(s) with the team ledger: "
            + "; ".join(report.conflicts)
        )
    return report


def _insert_missing(conn: Connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert each row the table has no identical copy of (NULLs compare equal)."""
    same = " AND ".join(f"{name} IS NOT DISTINCT FROM ?" for name in columns)
    for row in rows:
        if not conn.execute(f"SELECT 1 FROM {table} WHERE {same}", row).fetchone():
            conn.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", row
            )


def _merge_batch_rows(conn: Connection, rows: list[tuple], report: ImportReport) -> None:
    """Each batch row keeps its attempt, so a rerun of the batch on the team ledger sends
    nothing twice; the same row tied to another attempt there is a conflict."""
    for batch_id, row, attempt_id in rows:
        present = conn.execute(
            "SELECT attempt_id FROM batch_rows WHERE batch_id = ? AND row = ?", (batch_id, row)
        ).fetchone()
        if present is None:
            conn.execute(
                "INSERT INTO batch_rows (batch_id, row, attempt_id) VALUES (?, ?, ?)",
                (batch_id, row, attempt_id),
            )
        elif present[0] != attempt_id:
            report.conflicts.append(f"batch {batch_id[:8]} row {row}: another attempt has it")
