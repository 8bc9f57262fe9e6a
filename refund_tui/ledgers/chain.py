"""The tamper-evident trail: every append-only record of a ledger is a link of one hash chain.

What is chained: attempts, events (status changes, claims, flags, resend decisions),
notices, double refunds, batch rows and finding acknowledgements: every row the ledger
never changes (``CHAINED``; a table added later joins with its own migration). Each chained
row carries
- ``chain_seq``: its place in the chain, 1, 2, 3... with no gap, one sequence across tables;
- ``prev_hash``: the hash of link ``chain_seq - 1`` (``GENESIS`` for the first);
- ``row_hash`` = sha256(prev_hash + "\\n" + canonical(row)), in hex.
``chain_head`` holds the newest link (seq, hash), so a deleted tail is seen as well.

canonical(row) is the table's name followed, for each hashed column in ``CHAINED`` order,
by ``|-`` for NULL or ``|<length in characters>:<value as text>``: unambiguous whatever the
values hold. Timestamps are text in UTC with microseconds on PostgreSQL (``pg_text``) and
the stored text on SQLite; numbers are decimal. The database renders it (``canonical_sql``,
the same expression for writing and verifying); the hashing is always done in Python by
``verify``, never by a function of the database.

Who writes it: on PostgreSQL the database itself, in a BEFORE INSERT trigger that fires
after every other (``zz_chain_link``: triggers fire in name order) and takes the row lock of
``chain_head`` until the transaction ends, so inserts from every host form one chain in
commit order; a deferred trigger moves the head once, at commit (``postgres_schema._V4``).
On SQLite the adapter, in the insert's own transaction (``SqlLedger._append``; SQLite's
write lock serialises it). ``verify`` recomputes every hash in Python.

What it proves: an edited, deleted or inserted row is found by ``refund-tui ledger verify``
unless whoever changed it also rewrote every later link and the head; a head hash written
down elsewhere (``verify`` prints it) catches that too. On migration, rows already in a
ledger are chained in table order (attempts, events, notices, ...), each table by its key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
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
}
#: Timestamp columns of chained tables (PostgreSQL renders them with ``pg_text``).
TIME_COLUMNS = frozenset({"created_at", "at", "received_at", "found_at", "acked_at"})


def hashed(table: str, *, postgres: bool) -> tuple[str, ...]:
    """The columns hashed for ``table`` on one kind of database."""
    columns = CHAINED[table].columns
    return (*columns, "recorded_by") if postgres else columns


def pg_text(column: str, row: str) -> str:
    """PostgreSQL expression: ``row.column`` as the text the chain hashes."""
    if column in TIME_COLUMNS:
        return f"""to_char({row}.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return f"{row}.{column}::text"


def canonical_sql(expressions: Iterable[str]) -> str:
    """SQL (SQLite and PostgreSQL) rendering the canonical form of the hashed values."""
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


def links_sql(select: Callable[[str], str]) -> str:
    """One query reading every link in chain order (unlinked rows first), from each table's
    ``select`` (chain_seq, prev_hash, row_hash, table, key as text, canonical form)."""
    union = " UNION ALL ".join(select(table) for table in CHAINED)
    return f"SELECT * FROM ({union}) links ORDER BY 1 NULLS FIRST, 4, 5"


def _where(link: Link) -> str:
    return f"{CHAINED[link.table].name} {link.key}"


def verify(links: Iterable[Link], head_seq: int, head_hash: str) -> ChainVerdict:
    """Walk the links, in chain order (``links_sql``), and report the first that does not hold."""
    prev, expected, before = GENESIS, 1, None

    def broken(link: Link, reason: str) -> ChainVerdict:
        event_id = int(link.key) if link.table == "events" else None
        where = f"{_where(link)} (link {link.seq})" if link.seq is not None else _where(link)
        return ChainVerdict(expected - 1, prev, ChainBreak(link.seq, link.table, link.key, event_id,
                                                           f"the chain breaks at {where}: {reason}"))  # fmt: skip

    for link in links:
        if link.seq is None or link.prev_hash is None or link.row_hash is None:
            return broken(link, "it is not in the chain (inserted bypassing it)")
        if link.seq < expected:
            return broken(link, f"a second record claims link {link.seq} (one was inserted by hand)")
        if link.seq > expected:
            after = f" after {_where(before)}" if before else ""
            return broken(link, f"link {expected} is missing{after} (a record was deleted)")
        if link.prev_hash != prev:
            after = f"{_where(before)}" if before else "the start"
            return broken(link, f"it does not follow {after} (one of them was changed or replaced)")
        if link_hash(prev, link.table, link.canonical) != link.row_hash:
            return broken(link, "its contents differ from what was recorded (changed after it was written)")
        prev, expected, before = link.row_hash, expected + 1, link
    count = expected - 1
    if (head_seq, head_hash) != (count, prev):
        reason = (
            f"the newest {head_seq - count} record(s) after link {count} are missing (deleted)"
            if head_seq > count
            else "the chain head does not match the newest record (changed by hand)"
        )
        return ChainVerdict(count, prev, ChainBreak(count + 1, "chain_head", "1", None, f"the chain breaks: {reason}"))
    return ChainVerdict(count, prev, None)
