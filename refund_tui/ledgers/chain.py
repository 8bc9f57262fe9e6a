"""The tamper-evident trail: every append-only record of a ledger is a link of one hash chain.

What is chained: attempts, events (status changes, flags, resend decisions), notices,
double refunds, batch rows, finding acknowledgements, claims and notes (``triage``) and, on a
team ledger, approval decisions and approval rules: every row the ledger
never changes (``CHAINED``; a table added later joins with its own migration). Each chained
row carries
- ``chain_seq``: its place in the chain, 1, 2, 3... with no gap, one sequence across tables;
- ``prev_hash``: the hash of link ``chain_seq - 1`` (``GENESIS`` for the first);
- ``row_hash`` = sha256(prev_hash + "\\n" + canonical(row)), in hex.
``chain_head`` holds the newest link (seq, hash), so a deleted tail is seen as well.

canonical(row) is the table's name followed, for each hashed column in ``CHAINED`` order,
by ``|-`` for NULL or ``|<length in characters>:<value as text>``: unambiguous whatever the
values hold. Timestamps are text in UTC with microseconds on PostgreSQL (``pg_text``) and
the stored text on SQLite; numbers are decimal. PostgreSQL renders it (``canonical_sql``, the
same expression in the trigger and in ``verify``'s query); on SQLite Python does
(``canonical``), writing and verifying. ``verify`` always hashes in Python, never with a
function of the database.

Who writes it: on PostgreSQL the database itself, in a BEFORE INSERT trigger that fires
after every other (``zz_chain_link``: triggers fire in name order) and takes the row lock of
``chain_head`` until the transaction ends, so inserts from every host form one chain in
commit order; a deferred trigger moves the head once, at commit (``postgres_schema._V5``).
On SQLite the adapter, in the insert's own transaction (``SqlLedger._append``; SQLite's
write lock serialises it). ``verify`` recomputes every hash in Python.

What it proves: an edited, deleted or inserted row is found by ``refund-tui ledger verify``
unless whoever changed it also rewrote every later link and the head; a head hash written
down elsewhere (``verify`` prints it) catches that too. On migration, rows already in a
ledger are chained in table order (attempts, events, notices, ...), each table by its key.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from refund_tui.core.ledger import ChainBreak, ChainVerdict

GENESIS = "0" * 64
#: Columns every chained table gains.
LINK_COLUMNS = ("chain_seq", "prev_hash", "row_hash")


@dataclass(frozen=True, slots=True)
class Chained:
    """A chained table: its key, whether SQLite assigns it (an INTEGER PRIMARY KEY), the
    columns hashed, in order (PostgreSQL adds recorded_by), and how a report names a row."""

    key: str
    numbered: bool
    columns: tuple[str, ...]
    name: str
    label: str = ""  # the column naming a row in a report, when not the key
    team_only: bool = False  # a table only a team ledger (PostgreSQL) has

    @property
    def shown(self) -> str:
        return self.label or self.key


_EVENT = (
    "id", "attempt_id", "at", "status", "source", "provider_reference", "failure_reason",
    "raw_code", "raw_message", "http_status", "note", "outcome", "client_account",
    "client_host", "client_ssh",
)  # fmt: skip
#: In chain order for rows that were in a ledger before it had a chain. Never edit a
#: table's columns here: the hashes already written depend on them; add a migration instead.
CHAINED: dict[str, Chained] = {
    "attempts": Chained("seq", True, (
        "seq", "attempt_id", "created_at", "profile", "environment", "provider",
        "payment_reference", "amount_minor", "currency", "phone", "country_id", "reason",
        "webhook_url", "idempotency_key", "external_reference", "request_method",
        "request_path", "request_body", "operator_name", "operator_uid", "hostname",
        "ssh_client", "pid", "app_version", "retry_of",
    ), "attempt", "attempt_id"),  # fmt: skip
    "events": Chained("id", True, _EVENT, "event"),
    # A kept notice is matched later (outcome, attempt_id): those two are not hashed.
    "notices": Chained("id", True, (
        "id", "received_at", "provider", "identity", "event", "refund_reference",
        "payment_reference", "tag", "status", "failure_reason", "body",
    ), "notice"),  # fmt: skip
    "double_refunds": Chained("id", True, (
        "id", "attempt_id", "found_at", "provider_reference", "second_reference",
    ), "double refund"),  # fmt: skip
    "batch_rows": Chained("attempt_id", False, ("batch_id", "row", "attempt_id"), "batch row of attempt"),
    "finding_acks": Chained("id", True, (
        "id", "finding_id", "kind", "provider", "payment_reference", "note", "acked_at",
        "operator_name", "hostname",
    ), "finding acknowledgement"),  # fmt: skip
    "triage": Chained("id", True, (
        "id", "attempt_id", "at", "action", "note", "took_over", "operator_name", "operator_uid",
        "hostname", "ssh_client",
    ), "claim or note"),  # fmt: skip
    "approvals": Chained("id", True, (
        "id", "attempt_id", "decision", "reason", "at", "operator_name", "hostname", "ssh_client",
    ), "approval decision of attempt", "attempt_id", team_only=True),  # fmt: skip
    "approval_rules": Chained("id", True, (
        "id", "set_at", "above", "expires_hours", "daily_limit", "exponents",
    ), "approval rules", team_only=True),  # fmt: skip
}
#: Timestamp columns of chained tables (PostgreSQL renders them with ``pg_text``).
TIME_COLUMNS = frozenset({"created_at", "at", "received_at", "found_at", "acked_at", "set_at"})


def tables(*, postgres: bool) -> tuple[str, ...]:
    """The chained tables of one kind of ledger."""
    return tuple(name for name, spec in CHAINED.items() if postgres or not spec.team_only)


def hashed(table: str, *, postgres: bool) -> tuple[str, ...]:
    """The columns hashed for ``table`` on one kind of database."""
    columns = CHAINED[table].columns
    return (*columns, "recorded_by") if postgres else columns


def pg_text(column: str, row: str) -> str:
    """PostgreSQL expression: ``row.column`` as the text the chain hashes."""
    if column in TIME_COLUMNS:
        return f"""to_char({row}.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return f"{row}.{column}::text"


def canonical(values: Iterable[object]) -> str:
    """The canonical form of the hashed values (str, int or None), in Python."""
    return "".join([
        "|-" if value is None
        else f"|{len(value)}:{value}" if value.__class__ is str
        else f"|{len(str(value))}:{value}"
        for value in values
    ])  # fmt: skip


def canonical_sql(expressions: Iterable[str]) -> str:
    """SQL rendering the canonical form of the values of ``expressions`` (PostgreSQL)."""
    return " || ".join(f"coalesce('|' || length({value}) || ':' || {value}, '|-')" for value in expressions)


def link_hash(prev_hash: str, table: str, canonical: str) -> str:
    """The hash of a row of ``table`` whose canonical form is ``canonical``."""
    return hashlib.sha256(f"{prev_hash}\n{table}{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Link:
    """One chained row as read back: its place, hashes, table, key and canonical form."""

    seq: int | None
    prev_hash: str | None
    row_hash: str | None
    table: str
    key: str
    canonical: str


def in_chain_order(tables: Iterable[list[tuple]]) -> list[tuple]:
    """The rows (``Link``'s fields) of every table in ``CHAINED`` order, sorted into chain
    order (faster than reading each in index order): rows without a link first; rows of
    several tables claiming one place in ``CHAINED`` order (the sort is stable)."""
    return sorted(itertools.chain.from_iterable(tables), key=lambda row: -1 if row[0] is None else row[0])


def _where(link: Link) -> str:
    return f"{CHAINED[link.table].name} {link.key}"


def _fault(link: Link, expected: int, prev: str, before: Link | None) -> str:
    """What is wrong with the link found where link ``expected`` should follow ``prev``."""
    if link.seq is None or link.prev_hash is None or link.row_hash is None:
        return "it is not in the chain (inserted bypassing it)"
    if link.seq < expected:
        return f"a second record claims link {link.seq} (one was inserted by hand)"
    if link.seq > expected:
        after = f" after {_where(before)}" if before else ""
        return f"link {expected} is missing{after} (a record was deleted)"
    if link.prev_hash != prev:
        after = _where(before) if before else "the start"
        return f"it does not follow {after} (one of them was changed or replaced)"
    return "its contents differ from what was recorded (changed after it was written)"


def verify(rows: Iterable[tuple], head_seq: int, head_hash: str) -> ChainVerdict:
    """Walk the links (``Link``'s fields, in chain order: ``in_chain_order``) and report the
    first that does not hold."""
    prev, expected, before = GENESIS, 1, None
    for row in rows:
        seq, prev_hash, row_hash, table, _, text = row
        if seq == expected and prev_hash == prev and row_hash == link_hash(prev, table, text):
            prev, expected, before = row_hash, expected + 1, row
            continue
        link = Link(*row)
        where = _where(link) + (f" (link {link.seq})" if link.seq is not None else "")
        reason = _fault(link, expected, prev, before and Link(*before))
        event_id = int(link.key) if link.table == "events" else None
        return ChainVerdict(expected - 1, prev, ChainBreak(link.seq, link.table, link.key, event_id,
                                                           f"the chain breaks at {where}: {reason}"))  # fmt: skip
    count = expected - 1
    if (head_seq, head_hash) != (count, prev):
        reason = (
            f"the newest {head_seq - count} record(s) after link {count} are missing (deleted)"
            if head_seq > count
            else "the chain head does not match the newest record (changed by hand)"
        )
        return ChainVerdict(count, prev, ChainBreak(count + 1, "chain_head", "1", None, f"the chain breaks: {reason}"))
    return ChainVerdict(count, prev, None)
