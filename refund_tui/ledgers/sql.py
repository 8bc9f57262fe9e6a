"""The ledger port in the SQL that SQLite and PostgreSQL both speak.

``SqlLedger`` holds every query and applies ``core.ledger_rules``; an adapter supplies
connections, transactions (``_write``: one atomic unit, retried by the adapter when the
database asks), the clock, the per-payment lock and its error translation. SQL here uses
``?`` placeholders; the PostgreSQL adapter translates them.

Both schemas share these names: ``attempts`` (one row per attempt, ``seq`` its order),
``events`` (status changes, ``id`` their order), ``current_state`` (each attempt's latest
state, derived from events by a trigger) and ``notices`` (the webhook inbox). Every
append-only row is inserted by ``_append``, which links it into the hash chain where the
adapter does that itself (SQLite; PostgreSQL's trigger does it there: ``chain``).
"""

from __future__ import annotations

import heapq
import os
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol, TypeVar

from refund_tui import __version__
from refund_tui.core import ledger_rules as rules
from refund_tui.core.approvals import ApprovalRules, Decision
from refund_tui.core.ledger import (
    AUDIT_FIELDS,
    MIN_PREFIX,
    NOTE_LIMIT,
    UNRESOLVED,
    Acknowledgement,
    Attempt,
    AttemptNotFound,
    BatchRow,
    BatchRowRecorded,
    CapExceeded,
    ChainVerdict,
    ClaimHeld,
    Event,
    LedgerError,
    LedgerLost,
    NewAttempt,
    NoticeOutcome,
    RefundInFlight,
    StoredNotice,
    TriageAction,
    TriageEntry,
    whoami,
)
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.operator import Operator
from refund_tui.core.provider import Notice, RefundRequest
from refund_tui.ledgers import chain
from refund_tui.ledgers.audit import client_fields

_AUDIT_CHUNK = 1000
#: Value -> member, much faster than calling the enum when building 100,000 rows.
_PROVIDER_BY_VALUE = {provider.value: provider for provider in ProviderName}
_STATUS_BY_VALUE = {status.value: status for status in RefundStatus}
_HOLDING = tuple(status.value for status in rules.HOLDING)

_ATTEMPT_COLUMNS = (
    "a.attempt_id, a.created_at, a.profile, a.environment, a.provider, a.payment_reference, "
    "a.amount_minor, a.currency, a.phone, a.country_id, a.reason, a.webhook_url, "
    "a.idempotency_key, a.external_reference, a.request_method, a.request_path, "
    "a.request_body, a.operator_name, a.operator_uid, a.hostname, a.ssh_client, a.pid, "
    "a.app_version, a.retry_of, c.status, c.provider_reference, c.failure_reason, "
    "c.raw_code, c.raw_message, c.updated_at, c.flagged"
)
_ATTEMPTS_FROM = "FROM attempts a JOIN current_state c ON c.attempt_seq = a.seq"
_EVENT_COLUMNS = (
    "at, status, source, provider_reference, failure_reason, raw_code, raw_message, "
    "http_status, note"
)
#: Selected for ``audit_rows``, in this order (``amount`` is computed; ``recorded_by`` is
#: the adapter's ``_audit_recorded_by``).
_AUDIT_COLUMNS = tuple(field for field in AUDIT_FIELDS if field != "amount")
_AUDIT_SOURCES = {"event_id": "e.id", "event_at": "e.at", "attempt_id": "a.attempt_id",
                  "attempt_created_at": "a.created_at", "outcome": "coalesce(e.outcome, 'recorded')"}  # fmt: skip
_AUDIT_EVENT_FIELDS = {"status", "source", "provider_reference", "failure_reason", "raw_code",
                       "raw_message", "http_status", "note", "client_account", "client_host",
                       "client_ssh", *chain.LINK_COLUMNS}  # fmt: skip
_AUDIT_SELECT = "SELECT {columns} FROM events e JOIN attempts a ON a.attempt_id = e.attempt_id"


def _audit_source(field: str, recorded_by: str) -> str:
    if field == "recorded_by":
        return recorded_by
    if field in _AUDIT_SOURCES:
        return _AUDIT_SOURCES[field]
    return f"{'e' if field in _AUDIT_EVENT_FIELDS else 'a'}.{field}"


_TRIAGE_COLUMNS = (
    "attempt_id, at, action, note, took_over, operator_name, operator_uid, hostname, ssh_client"
)
#: A claim, release or note as an audit row: what is not an event's is NULL, its author's
#: OS account, host and SSH client are the client columns (``took_over`` becomes its note).
_AUDIT_TRIAGE_SOURCES = {"event_at": "e.at", "source": "e.action", "note": "e.note",
                         "attempt_id": "a.attempt_id", "attempt_created_at": "a.created_at",
                         "client_account": "e.operator_name", "client_host": "e.hostname",
                         "client_ssh": "e.ssh_client", "outcome": "'recorded'"}  # fmt: skip
_AUDIT_TRIAGE_SELECT = (
    "SELECT {columns}, e.took_over FROM triage e JOIN attempts a ON a.attempt_id = e.attempt_id"
)


def _audit_triage_source(field: str, recorded_by: str) -> str:
    if field == "recorded_by":
        return recorded_by
    if field in _AUDIT_TRIAGE_SOURCES:
        return _AUDIT_TRIAGE_SOURCES[field]
    return "NULL" if field in _AUDIT_EVENT_FIELDS or field == "event_id" else f"a.{field}"


_NOTICE_COLUMNS = (
    "provider, identity, event, refund_reference, payment_reference, status, failure_reason, "
    "tag, received_at, outcome, attempt_id"
)
#: Kept notices an attempt now matches, by the provider's reference or by our tag.
_MATCHABLE = """SELECT {columns} FROM notices n WHERE outcome = 'kept' AND (
    EXISTS (SELECT 1 FROM current_state c JOIN attempts a ON a.seq = c.attempt_seq
            WHERE c.provider_reference = n.refund_reference AND a.provider = n.provider)
    OR EXISTS (SELECT 1 FROM attempts a WHERE a.provider = n.provider
               AND a.external_reference = n.tag))"""

T = TypeVar("T")


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What ``SqlLedger`` needs of a connection inside ``_write``: ``?`` placeholders."""

    def execute(self, sql: str, params: tuple | list = ()) -> Cursor: ...


def moment(value: str | datetime) -> datetime:
    """A stored timestamp (ISO text in SQLite, timestamptz in PostgreSQL) as an aware datetime."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def iso(moment_: datetime) -> str:
    if moment_.tzinfo is None:
        raise ValueError("give an aware datetime (UTC), not a naive one")
    return moment_.astimezone(UTC).isoformat(timespec="microseconds")


def _to_attempt(row: tuple) -> Attempt:
    (attempt_id, created_at, profile, environment, provider, payment_reference, amount_minor,
     currency, phone, country_id, reason, webhook_url, idempotency_key, external_reference,
     method, path, body, operator_name, operator_uid, hostname, ssh_client, pid, app_version,
     retry_of, status, provider_reference, failure_reason, raw_code, raw_message, updated_at,
     flagged, double_refunds, *recorded_by) = row  # fmt: skip
    provider = _PROVIDER_BY_VALUE[provider]
    return Attempt(
        attempt_id=attempt_id,
        created_at=moment(created_at),
        profile=profile,
        environment=environment,
        provider=provider,
        payment_reference=payment_reference,
        amount=Money(amount_minor, currency),
        phone=phone,
        country_id=country_id,
        reason=reason,
        webhook_url=webhook_url,
        request=RefundRequest(
            provider=provider,
            payment_reference=payment_reference,
            method=method,
            path=path,
            body=body,
            idempotency_key=idempotency_key,
            external_reference=external_reference,
            amount=Money(amount_minor, currency),
        ),
        operator=Operator(operator_name, operator_uid, hostname, ssh_client),
        pid=pid,
        app_version=app_version,
        retry_of=retry_of,
        status=_STATUS_BY_VALUE[status],
        provider_reference=provider_reference,
        failure_reason=failure_reason,
        raw_code=raw_code,
        raw_message=raw_message,
        updated_at=moment(updated_at),
        flagged=bool(flagged),
        double_refunds=tuple(double_refunds.split(",")) if double_refunds else (),
        recorded_by=recorded_by[0] if recorded_by else None,
    )


def _to_event(row: tuple) -> Event:
    at, status, *rest = row
    return Event(moment(at), _STATUS_BY_VALUE[status], *rest)


def _to_triage(row: tuple) -> TriageEntry:
    attempt_id, at, action, note, took_over, name, uid, hostname, ssh_client, *recorded_by = row
    return TriageEntry(
        attempt_id=attempt_id,
        at=moment(at),
        action=TriageAction(action),
        operator=Operator(name, uid, hostname, ssh_client),
        note=note,
        took_over=took_over,
        recorded_by=recorded_by[0] if recorded_by else None,
    )


def _took_over_note(entry: dict) -> str | None:
    """A triage audit row's note: the note's text, or whose claim a claim or release ended."""
    if entry["took_over"]:
        return f"took over from {entry['took_over']}"
    return entry["note"]


def _stored(row: tuple) -> StoredNotice:
    provider, identity, event, reference, payment, status, failure, tag, *rest = row
    received_at, outcome, attempt_id = rest
    notice = Notice(
        ProviderName(provider), identity, event, reference, payment,
        RefundStatus(status) if status else None, failure, tag,
    )  # fmt: skip
    return StoredNotice(notice, moment(received_at), NoticeOutcome(outcome), attempt_id)


class SqlLedger:
    """The port's behaviour over SQL; subclasses implement the hooks below."""

    location: str
    #: The second references of an attempt's double refunds, comma-separated (dialects differ).
    _double_refunds_column: str
    #: Extra attempt/event (and triage) columns an adapter reads (PostgreSQL: who recorded it).
    _attempt_extra = ""
    _event_extra = ""
    #: Who recorded an event, for the audit export (NULL where the database cannot say).
    _audit_recorded_by = "NULL"
    _triage_recorded_by = "NULL"
    #: The tables of this kind of ledger in the hash chain.
    _chained = chain.tables(postgres=False)
    #: The column ``core.ledger.made_by`` reads: the database role, else the OS account.
    _made_by_column = "a.operator_name"
    #: The database role this ledger records as; None where the database knows no one.
    role: str | None = None

    # -- hooks ----------------------------------------------------------------------------

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, committed on success, else rolled back."""
        raise NotImplementedError

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """Rows of one read-only statement."""
        raise NotImplementedError

    def _now(self, conn: Connection) -> str | datetime:
        """The ledger's clock, as stored in timestamp columns."""
        raise NotImplementedError

    def _serialise(self, conn: Connection, key: str) -> None:
        """Serialise the writes that name ``key`` (a payment, attempt or notice) until the
        transaction ends. SQLite's write lock already serialises every write."""

    def _match_kept_notice(
        self, conn: Connection, notice_id: int, outcome: NoticeOutcome, attempt_id: str | None
    ) -> None:
        conn.execute(
            "UPDATE notices SET outcome = ?, attempt_id = ? WHERE id = ?",
            (outcome.value, attempt_id, notice_id),
        )

    def _intent_status(self, conn: Connection, new: NewAttempt) -> RefundStatus:
        """The status an intent is recorded in (a team ledger's rules may hold it for approval)."""
        return RefundStatus.PENDING

    def _intent_recorded(self) -> None:
        """After an intent's commit: whatever makes it outlast the loss of a side file."""

    def _since(self, since: datetime) -> str | datetime:
        """A ``since`` filter as the timestamp columns compare it."""
        return iso(since)

    def _link(self, conn: Connection, table: str, values: dict[str, Any]) -> dict[str, Any]:
        """The row to insert into a chained ``table``, with its link in the hash chain where
        the adapter writes it (SQLite); unchanged where the database does (PostgreSQL)."""
        return values

    def _snapshot(self, work: Callable[[Connection], T]) -> T:
        """Run read-only ``work`` on one consistent snapshot of the ledger."""
        raise NotImplementedError

    def _links(self, conn: Connection, table: str) -> list[tuple]:
        """``table``'s links, each as ``chain.Link``'s fields: chain_seq, prev_hash, row_hash,
        table, key as text, canonical form."""
        raise NotImplementedError

    # -- the trail --------------------------------------------------------------------------

    @cached_property
    def client(self) -> Operator:
        """The OS account, host and SSH client of this process, written on every event."""
        return Operator.current()

    def _append(
        self, conn: Connection, table: str, values: dict[str, Any], returning: str = ""
    ) -> tuple | None:
        """Insert one append-only row, linked into the hash chain; the ``returning`` columns
        of the row as stored, when asked for."""
        row = self._link(conn, table, values)
        cursor = conn.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
            + (f" RETURNING {returning}" if returning else ""),
            tuple(row.values()),
        )
        return cursor.fetchone() if returning else None

    def verify_chain(self) -> ChainVerdict:
        def read(conn: Connection) -> ChainVerdict:
            tables = [self._links(conn, table) for table in self._chained]
            head_seq, head_hash = conn.execute("SELECT seq, hash FROM chain_head").fetchone()
            return chain.verify(chain.in_chain_order(tables), head_seq, head_hash)

        return self._snapshot(read)

    # -- writing --------------------------------------------------------------------------

    def record_attempt(
        self, new: NewAttempt, *, limit: Money, known_references: Collection[str]
    ) -> Attempt:
        rules.check_new(new, limit)
        known = set(known_references)
        request = new.request
        attempt_id = str(uuid.uuid4())

        def write(conn: Connection) -> None:
            if new.batch_row is not None:
                self._check_batch_row(conn, new.batch_row)
            self._serialise(conn, f"payment:{new.provider.value}:{new.payment_reference}")
            status = self._intent_status(conn, new)
            held = conn.execute(
                f"""SELECT a.amount_minor, a.currency, c.provider_reference, a.attempt_id, c.status
                {_ATTEMPTS_FROM} WHERE a.provider = ? AND a.payment_reference = ?
                AND c.status IN ({", ".join("?" * len(_HOLDING))})""",
                (new.provider.value, new.payment_reference, *_HOLDING),
            ).fetchall()
            for *_, reference, other, other_status in held:
                if reference is None and other_status != RefundStatus.AWAITING_APPROVAL.value:
                    raise RefundInFlight(other, new.payment_reference, limit.currency)
            flying = rules.in_flight(
                ((Money(minor, currency), reference) for minor, currency, reference, *_ in held),
                known,
                limit.currency,
            )
            if flying + new.amount > limit:
                remaining = max(limit - flying, Money.zero(limit.currency))
                raise CapExceeded(remaining, new.payment_reference)
            now = self._now(conn)
            self._append(conn, "attempts", {
                "attempt_id": attempt_id, "created_at": now, "profile": new.profile,
                "environment": new.environment, "provider": new.provider.value,
                "payment_reference": new.payment_reference, "amount_minor": new.amount.minor,
                "currency": new.amount.currency, "phone": new.phone, "country_id": new.country_id,
                "reason": new.reason, "webhook_url": new.webhook_url,
                "idempotency_key": request.idempotency_key,
                "external_reference": request.external_reference,
                "request_method": request.method, "request_path": request.path,
                "request_body": request.body, "operator_name": new.operator.name,
                "operator_uid": new.operator.uid, "hostname": new.operator.hostname,
                "ssh_client": new.operator.ssh_client, "pid": os.getpid(),
                "app_version": __version__, "retry_of": new.retry_of,
            })  # fmt: skip
            self._insert_event(conn, attempt_id, status, "intent", at=now)
            if new.batch_row is not None:
                self._append(conn, "batch_rows", {
                    "batch_id": new.batch_row.batch_id, "row": new.batch_row.row, "attempt_id": attempt_id,
                })  # fmt: skip

        try:
            self._write(write)
        except LedgerLost:
            raise  # the ledger itself went away: what it says now proves nothing
        except LedgerError:
            # A connection lost during COMMIT leaves its outcome unknown: if the intent is in
            # the ledger, it stands (and will be sent); reporting "nothing recorded" would
            # leave an intent nobody knows about for recovery to send.
            if not self._recorded(attempt_id):
                self._raise_if_batch_row_taken(new.batch_row)
                raise
        self._intent_recorded()
        return self.get(attempt_id)

    def _check_batch_row(self, conn: Connection, batch_row: BatchRow) -> None:
        """Refuse a batch row that already has its attempt (serialised per row)."""
        self._serialise(conn, f"batch:{batch_row.batch_id}:{batch_row.row}")
        found = conn.execute(
            "SELECT attempt_id FROM batch_rows WHERE batch_id = ? AND row = ?",
            (batch_row.batch_id, batch_row.row),
        ).fetchone()
        if found is not None:
            raise BatchRowRecorded(found[0])

    def _raise_if_batch_row_taken(self, batch_row: BatchRow | None) -> None:
        """After a refused write: a concurrent run that recorded the same row (the unique
        key on batch_rows refused ours) is BatchRowRecorded, not a ledger fault."""
        if batch_row is None:
            return
        try:
            found = self.batch_attempts(batch_row.batch_id).get(batch_row.row)
        except LedgerError:
            return
        if found is not None:
            raise BatchRowRecorded(found)

    def _recorded(self, attempt_id: str) -> bool:
        """Whether the attempt is in the ledger; False when that cannot be read either."""
        try:
            return bool(self.query("SELECT 1 FROM attempts WHERE attempt_id = ?", (attempt_id,)))
        except LedgerError:
            return False

    def add_event(
        self, attempt_id: str, status: RefundStatus, source: str, **details: str | int | None
    ) -> bool:
        status = RefundStatus(status)
        return self._write(lambda conn: self._append_status(conn, attempt_id, status, source, **details))

    def _append_status(
        self,
        conn: Connection,
        attempt_id: str,
        status: RefundStatus,
        source: str,
        *,
        provider_reference: str | None = None,
        failure_reason: str | None = None,
        raw_code: str | None = None,
        raw_message: str | None = None,
        http_status: int | None = None,
        note: str | None = None,
    ) -> bool:
        current = self._current(conn, attempt_id)
        if rules.tells_nothing_new(current, status, provider_reference, failure_reason, note):
            return False
        if not rules.may_follow(current[0], status) or not rules.reference_free(
            current[1], provider_reference, self._reference_taken(conn, attempt_id, provider_reference)
        ):
            return False
        self._insert_event(
            conn, attempt_id, status, source,
            provider_reference=provider_reference, failure_reason=failure_reason,
            raw_code=raw_code, raw_message=raw_message, http_status=http_status, note=note,
        )  # fmt: skip
        return True

    @staticmethod
    def _reference_taken(conn: Connection, attempt_id: str, reference: str | None) -> bool:
        if reference is None:
            return False
        taken = conn.execute(
            """SELECT 1 FROM current_state c JOIN attempts a ON a.seq = c.attempt_seq
            WHERE c.provider_reference = ? AND a.attempt_id != ? LIMIT 1""",
            (reference, attempt_id),
        ).fetchone()
        return taken is not None

    def claim_send(
        self, attempt_id: str, lease: timedelta, note: str = "resending the stored request",
        outcome: str | None = None,
    ) -> bool:  # fmt: skip
        def write(conn: Connection) -> bool:
            status, reference, failure = self._current(conn, attempt_id)
            if reference is not None or status.is_terminal:
                return False
            last_id, last_at = conn.execute(
                """SELECT id, at FROM events WHERE attempt_id = ? AND source IN ('intent', 'send')
                ORDER BY id DESC LIMIT 1""",
                (attempt_id,),
            ).fetchone()
            answered = conn.execute(
                """SELECT 1 FROM events WHERE attempt_id = ? AND id > ?
                AND http_status BETWEEN 400 AND 499 LIMIT 1""",
                (attempt_id, last_id),
            ).fetchone()
            now = self._now(conn)
            if rules.send_may_be_running(bool(answered), moment(now) - moment(last_at), lease):
                return False
            self._append_same_status(conn, attempt_id, "send", note, outcome, at=now)
            return True

        return self._write(write)

    def record_decision(self, attempt_id: str, outcome: str, note: str) -> None:
        self._write(lambda conn: self._append_same_status(conn, attempt_id, "decision", note, outcome))

    def _append_same_status(
        self, conn: Connection, attempt_id: str, source: str, note: str, outcome: str | None,
        at: str | datetime | None = None,
    ) -> None:  # fmt: skip
        """An event that leaves the attempt's state as it is (a claim, a decision)."""
        status, reference, failure = self._current(conn, attempt_id)
        raw_code, raw_message = conn.execute(
            f"SELECT c.raw_code, c.raw_message {_ATTEMPTS_FROM} WHERE a.attempt_id = ?",
            (attempt_id,),
        ).fetchone()
        self._insert_event(
            conn, attempt_id, status, source, at=at, provider_reference=reference,
            failure_reason=failure, raw_code=raw_code, raw_message=raw_message, note=note,
            outcome=outcome,
        )  # fmt: skip

    def record_double_refund(self, attempt_id: str, reference: str, second: str, note: str) -> bool:
        def write(conn: Connection) -> bool:
            self._serialise(conn, f"attempt:{attempt_id}")
            known = conn.execute(
                "SELECT 1 FROM double_refunds WHERE attempt_id = ? AND second_reference = ?",
                (attempt_id, second),
            ).fetchone()
            if known:
                return False
            self._append(conn, "double_refunds", {
                "attempt_id": attempt_id, "found_at": self._now(conn),
                "provider_reference": reference, "second_reference": second,
            })  # fmt: skip
            self._append_flag(conn, attempt_id, note)
            return True

        return self._write(write)

    def double_refund_count(self) -> int:
        [(count,)] = self.query("SELECT count(DISTINCT attempt_id) FROM double_refunds")
        return count

    @property
    def ledger_id(self) -> str:
        [(ledger_id,)] = self.query("SELECT ledger_id FROM ledger_identity")
        return ledger_id

    def flag(self, attempt_id: str, note: str) -> None:
        if not note.strip():
            raise ValueError("say why the refund needs manual reconciliation")
        self._write(lambda conn: self._append_flag(conn, attempt_id, note.strip()))

    def _append_flag(self, conn: Connection, attempt_id: str, note: str) -> None:
        status, reference, failure = self._current(conn, attempt_id)
        self._insert_event(
            conn, attempt_id, status, "flag",
            provider_reference=reference, failure_reason=failure, note=note,
        )  # fmt: skip

    def _current(self, conn: Connection, attempt_id: str) -> tuple[RefundStatus, str | None, str | None]:
        """The attempt's state, locked for this transaction: read it only to change it."""
        self._serialise(conn, f"attempt:{attempt_id}")
        row = conn.execute(
            f"""SELECT c.status, c.provider_reference, c.failure_reason {_ATTEMPTS_FROM}
            WHERE a.attempt_id = ?""",
            (attempt_id,),
        ).fetchone()
        if row is None:
            raise AttemptNotFound(f"no refund attempt {attempt_id}")
        return _STATUS_BY_VALUE[row[0]], row[1], row[2]

    def _insert_event(
        self,
        conn: Connection,
        attempt_id: str,
        status: RefundStatus,
        source: str,
        *,
        at: str | datetime | None = None,
        provider_reference: str | None = None,
        failure_reason: str | None = None,
        raw_code: str | None = None,
        raw_message: str | None = None,
        http_status: int | None = None,
        note: str | None = None,
        outcome: str | None = None,
    ) -> None:
        self._append(conn, "events", {
            "attempt_id": attempt_id, "at": at or self._now(conn), "status": status.value,
            "source": source, "provider_reference": provider_reference,
            "failure_reason": failure_reason, "raw_code": raw_code, "raw_message": raw_message,
            "http_status": http_status, "note": note, "outcome": outcome,
            **client_fields(self.client),
        })  # fmt: skip

    # -- triage: claims and notes -----------------------------------------------------------

    def claim(self, attempt_id: str, operator: Operator, *, take_over: bool = False) -> TriageEntry:
        def write(conn: Connection) -> TriageEntry:
            held = self._claim_in_force(conn, attempt_id)
            if held is not None and held.who == self._me(operator):
                return held
            if held is not None and not take_over:
                raise ClaimHeld(held)
            return self._insert_triage(conn, attempt_id, TriageAction.CLAIM, operator, None, held)

        return self._write(write)

    def release(
        self, attempt_id: str, operator: Operator, *, take_over: bool = False
    ) -> TriageEntry | None:
        def write(conn: Connection) -> TriageEntry | None:
            held = self._claim_in_force(conn, attempt_id)
            if held is None:
                return None
            if held.who != self._me(operator) and not take_over:
                raise ClaimHeld(held)
            return self._insert_triage(conn, attempt_id, TriageAction.RELEASE, operator, None, held)

        return self._write(write)

    def add_note(self, attempt_id: str, note: str, operator: Operator) -> TriageEntry:
        note = note.strip()
        if not note:
            raise ValueError("the note is empty: say what you found or did")
        if len(note) > NOTE_LIMIT:
            raise ValueError(f"the note is {len(note):,} characters long: keep it under {NOTE_LIMIT:,}")

        def write(conn: Connection) -> TriageEntry:
            self._claim_in_force(conn, attempt_id)  # the attempt must exist
            return self._insert_triage(conn, attempt_id, TriageAction.NOTE, operator, note, None)

        return self._write(write)

    def _me(self, operator: Operator) -> str:
        return whoami(self, operator)

    def _claim_in_force(self, conn: Connection, attempt_id: str) -> TriageEntry | None:
        """The attempt's claim, serialised with every other claim of it until the transaction
        ends; AttemptNotFound when there is no such attempt."""
        self._serialise(conn, f"claim:{attempt_id}")
        if conn.execute("SELECT 1 FROM attempts WHERE attempt_id = ?", (attempt_id,)).fetchone() is None:
            raise AttemptNotFound(f"no refund attempt {attempt_id}")
        row = conn.execute(
            f"""SELECT {_TRIAGE_COLUMNS}{self._event_extra} FROM triage WHERE attempt_id = ?
            AND action IN ('claim', 'release') ORDER BY id DESC LIMIT 1""",
            (attempt_id,),
        ).fetchone()
        entry = _to_triage(row) if row else None
        return entry if entry is not None and entry.action is TriageAction.CLAIM else None

    def _insert_triage(
        self, conn: Connection, attempt_id: str, action: TriageAction, operator: Operator,
        note: str | None, held: TriageEntry | None,
    ) -> TriageEntry:  # fmt: skip
        """Insert one entry; ``took_over`` is the holder of ``held`` when not this author
        (PostgreSQL's trigger finds it again itself, whatever the client sends)."""
        took_over = held.who if held is not None and held.who != self._me(operator) else None
        values = dict(zip(_TRIAGE_COLUMNS.split(", "), (
            attempt_id, self._now(conn), action.value, note, took_over, operator.name,
            operator.uid, operator.hostname, operator.ssh_client,
        ), strict=True))  # fmt: skip
        return _to_triage(self._append(conn, "triage", values, f"{_TRIAGE_COLUMNS}{self._event_extra}"))

    # -- approvals: a team ledger's (``PostgresLedger``); an SQLite ledger has no rules -----

    def approval_rules(self) -> ApprovalRules:
        return ApprovalRules()

    def may_approve(self) -> bool:
        return False

    def awaiting_approval(self, *, mine: bool = False) -> list[Attempt]:
        return []

    def decide(self, attempt_id: str, decision: Decision, reason: str, operator: Operator) -> Attempt:
        raise LedgerError("approvals need a team ledger (PostgreSQL): this ledger has no approval rules")

    # -- notices --------------------------------------------------------------------------

    def receive_notice(self, notice: Notice, body: str) -> NoticeOutcome:
        def write(conn: Connection) -> NoticeOutcome:
            self._serialise(conn, f"notice:{notice.provider.value}:{notice.identity}")
            seen = conn.execute(
                "SELECT 1 FROM notices WHERE provider = ? AND identity = ?",
                (notice.provider.value, notice.identity),
            ).fetchone()
            if seen:
                return NoticeOutcome.DUPLICATE
            attempt_id, outcome = self._apply_notice(conn, notice)
            self._append(conn, "notices", {
                "provider": notice.provider.value, "identity": notice.identity,
                "event": notice.event, "refund_reference": notice.refund_reference,
                "payment_reference": notice.payment_reference,
                "status": notice.status.value if notice.status else None,
                "failure_reason": notice.failure_reason, "tag": notice.tag,
                "received_at": self._now(conn), "outcome": outcome.value,
                "attempt_id": attempt_id, "body": body,
            })  # fmt: skip
            return outcome

        return self._write(write)

    def reconcile_notices(self) -> int:
        """Looks first without a write transaction, which it opens only when there is work."""
        if not self.query(_MATCHABLE.format(columns="1") + " LIMIT 1"):
            return 0

        def write(conn: Connection) -> int:
            self._serialise(conn, "notices:reconcile")
            rows = conn.execute(
                _MATCHABLE.format(columns=f"id, {_NOTICE_COLUMNS}") + " ORDER BY id"
            ).fetchall()
            for notice_id, *columns in rows:
                attempt_id, outcome = self._apply_notice(conn, _stored(tuple(columns)).notice)
                self._match_kept_notice(conn, notice_id, outcome, attempt_id)
            return len(rows)

        return self._write(write)

    # -- batches and reconciliation ---------------------------------------------------------

    def acknowledge_finding(
        self, finding_id: str, *, kind: str, provider: ProviderName, payment_reference: str,
        note: str, operator: Operator,
    ) -> Acknowledgement:  # fmt: skip
        note = note.strip()
        if not note:
            raise ValueError("say what you found: the note is required")

        def write(conn: Connection) -> str | datetime:
            at = self._now(conn)
            self._append(conn, "finding_acks", {
                "finding_id": finding_id, "kind": kind, "provider": ProviderName(provider).value,
                "payment_reference": payment_reference, "note": note, "acked_at": at,
                "operator_name": operator.name, "hostname": operator.hostname,
            })  # fmt: skip
            return at

        at = self._write(write)
        return Acknowledgement(finding_id, note, moment(at), f"{operator.name}@{operator.hostname}")

    def acknowledgements(self) -> dict[str, Acknowledgement]:
        rows = self.query(
            """SELECT finding_id, note, acked_at, operator_name || '@' || hostname
            FROM finding_acks ORDER BY id"""
        )
        return {row[0]: Acknowledgement(row[0], row[1], moment(row[2]), row[3]) for row in rows}

    def batch_attempts(self, batch_id: str) -> dict[int, str]:
        rows = self.query("SELECT row, attempt_id FROM batch_rows WHERE batch_id = ?", (batch_id,))
        return {row: attempt_id for row, attempt_id in rows}

    def notice_conflicts(self, attempt_id: str) -> list[StoredNotice]:
        rows = self.query(
            f"""SELECT {_NOTICE_COLUMNS} FROM notices WHERE attempt_id = ?
            AND outcome = 'conflict' ORDER BY id""",
            (attempt_id,),
        )
        return [_stored(row) for row in rows]

    def recent_notices(self, *, kept_only: bool = False, limit: int = 50) -> list[StoredNotice]:
        where = "WHERE outcome = 'kept'" if kept_only else ""
        rows = self.query(
            f"SELECT {_NOTICE_COLUMNS} FROM notices {where} ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_stored(row) for row in rows]

    def _apply_notice(self, conn: Connection, notice: Notice) -> tuple[str | None, NoticeOutcome]:
        """A notice becomes a ``webhook`` status change under the usual guards; one that
        contradicts the attempt's outcome or reference flags it instead."""
        if notice.status is None:
            return None, NoticeOutcome.IGNORED
        attempt_id = self._match_notice(conn, notice)
        if attempt_id is None:
            return None, NoticeOutcome.KEPT
        current, reference, _ = self._current(conn, attempt_id)
        name = notice.provider.value
        if reference is not None and reference != notice.refund_reference:
            self._append_flag(
                conn, attempt_id, f"{name} notified refund {notice.refund_reference}, which "
                f"also carries this attempt's tag [{notice.tag}]: check for a double refund",
            )  # fmt: skip
            return attempt_id, NoticeOutcome.CONFLICT
        if self._append_status(
            conn, attempt_id, notice.status, "webhook",
            provider_reference=notice.refund_reference, failure_reason=notice.failure_reason,
        ):  # fmt: skip
            return attempt_id, NoticeOutcome.APPLIED
        if notice.status is current:
            return attempt_id, NoticeOutcome.UNCHANGED
        if rules.contradicts(current, notice.status):
            self._append_flag(
                conn, attempt_id, f"{name} notified refund {notice.refund_reference or '?'} "
                f"{notice.status.value}, but it is recorded {current.value}: check with the "
                "provider before any retry",
            )  # fmt: skip
            return attempt_id, NoticeOutcome.CONFLICT
        return attempt_id, NoticeOutcome.STALE

    @staticmethod
    def _match_notice(conn: Connection, notice: Notice) -> str | None:
        """The attempt the notice is about: by the provider's reference, else by our tag."""
        row = None
        if notice.refund_reference:
            row = conn.execute(
                """SELECT a.attempt_id FROM current_state c JOIN attempts a ON a.seq = c.attempt_seq
                WHERE c.provider_reference = ? AND a.provider = ?""",
                (notice.refund_reference, notice.provider.value),
            ).fetchone()
        if row is None and notice.tag:
            row = conn.execute(
                "SELECT attempt_id FROM attempts WHERE provider = ? AND external_reference = ?",
                (notice.provider.value, notice.tag),
            ).fetchone()
        return row[0] if row else None

    # -- reading --------------------------------------------------------------------------

    def _select(
        self, where: str, params: list, *, newest_first: bool = True, limit: int | None = None
    ) -> list[Attempt]:
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {_ATTEMPT_COLUMNS}, {self._double_refunds_column}{self._attempt_extra} "
            f"{_ATTEMPTS_FROM} {where} ORDER BY a.seq {order}"  # a.seq: indexed with who made it
        )
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, limit]
        return [_to_attempt(row) for row in self.query(sql, params)]

    def get(self, key: str) -> Attempt:
        key = key.strip()
        found = self._select("WHERE a.attempt_id = ?", [key])
        if not found and len(key) >= MIN_PREFIX:
            prefix = key.lower()
            found = self._select(
                "WHERE a.attempt_id >= ? AND a.attempt_id < ?", [prefix, prefix + "\x7f"], limit=2
            )
            if len(found) > 1:
                raise AttemptNotFound(f"'{key}' matches several attempts: type more of the id")
        if not found:
            found = self._select("WHERE c.provider_reference = ?", [key], limit=2)
            if len(found) > 1:
                raise AttemptNotFound(f"several refund attempts carry the reference '{key}'")
        if not found:
            raise AttemptNotFound(f"no refund attempt or provider reference '{key}'")
        return found[0]

    def events(self, attempt_id: str) -> list[Event]:
        rows = self.query(
            f"""SELECT {_EVENT_COLUMNS}{self._event_extra} FROM events WHERE attempt_id = ?
            ORDER BY id""",
            (attempt_id,),
        )
        if not rows:
            raise AttemptNotFound(f"no refund attempt {attempt_id}")
        return [_to_event(row) for row in rows]

    def attempts(
        self,
        *,
        statuses: Collection[RefundStatus] | None = None,
        provider: ProviderName | None = None,
        payment_reference: str | None = None,
        since: datetime | None = None,
        retry_of: str | None = None,
        made_by: str | None = None,
        limit: int | None = None,
    ) -> list[Attempt]:
        clauses: list[str] = []
        params: list = []
        if statuses is not None:
            clauses.append(f"c.status IN ({', '.join('?' * len(statuses)) or 'NULL'})")
            params.extend(RefundStatus(status).value for status in statuses)
        if provider is not None:
            clauses.append("a.provider = ?")
            params.append(ProviderName(provider).value)
        if payment_reference is not None:
            clauses.append("a.payment_reference = ?")
            params.append(payment_reference)
        if since is not None:
            clauses.append("a.created_at >= ?")
            params.append(self._since(since))
        if retry_of is not None:
            clauses.append("a.retry_of = ?")
            params.append(retry_of)
        if made_by is not None:
            clauses.append(f"{self._made_by_column} = ?")
            params.append(made_by)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select(where, params, limit=limit)

    def unresolved(self) -> list[Attempt]:
        placeholders = ", ".join("?" * len(UNRESOLVED))
        return self._select(
            f"WHERE c.status IN ({placeholders})",
            [status.value for status in UNRESOLVED],
            newest_first=False,
        )

    def counts(self, made_by: str | None = None) -> dict[RefundStatus, int]:
        totals = dict.fromkeys(RefundStatus, 0)
        mine, params = ("", []) if made_by is None else (f"AND {self._made_by_column} = ?", [made_by])
        if made_by is None:
            rows = self.query("SELECT status, count(*) FROM current_state GROUP BY status")
        else:
            rows = self.query(
                f"SELECT c.status, count(*) {_ATTEMPTS_FROM} WHERE TRUE {mine} GROUP BY c.status", params
            )
        for status, count in rows:
            totals[_STATUS_BY_VALUE[status]] = count
        [(retried,)] = self.query(
            f"""SELECT count(*) FROM attempts r JOIN attempts a ON a.attempt_id = r.retry_of
            JOIN current_state c ON c.attempt_seq = a.seq
            WHERE r.retry_of IS NOT NULL AND c.status = '{RefundStatus.FAILED.value}' {mine}""",
            params,
        )
        totals[RefundStatus.FAILED] -= retried
        return totals

    def retried_ids(self) -> set[str]:
        rows = self.query("SELECT DISTINCT retry_of FROM attempts WHERE retry_of IS NOT NULL")
        return {attempt_id for (attempt_id,) in rows}

    def payments(self) -> list[tuple[ProviderName, str]]:
        rows = self.query("SELECT DISTINCT provider, payment_reference FROM attempts")
        return [(ProviderName(provider), reference) for provider, reference in rows]

    def needing_attention(
        self, stuck_before: Mapping[ProviderName, datetime], limit: int
    ) -> tuple[list[Attempt], int]:
        stuck = " OR ".join("(a.provider = ? AND a.created_at < ?)" for _ in stuck_before) or "FALSE"
        where = f"""WHERE (c.status IN (?, ?, ?) OR c.flagged
            OR (c.status IN (?, ?) AND ({stuck})))
            AND NOT (c.status = ? AND NOT c.flagged
                     AND a.attempt_id IN (SELECT retry_of FROM attempts WHERE retry_of IS NOT NULL))"""
        params: list = [
            RefundStatus.FAILED.value, RefundStatus.UNKNOWN.value, RefundStatus.REVERSED.value,
            RefundStatus.PENDING.value, RefundStatus.PROCESSING.value,
        ]  # fmt: skip
        for provider, moment_ in stuck_before.items():
            params += [ProviderName(provider).value, self._since(moment_)]
        params.append(RefundStatus.FAILED.value)
        [(total,)] = self.query(f"SELECT count(*) {_ATTEMPTS_FROM} {where}", params)
        return self._select(where, params, limit=limit), total

    def triage_log(self, attempt_id: str) -> list[TriageEntry]:
        rows = self.query(
            f"""SELECT {_TRIAGE_COLUMNS}{self._event_extra} FROM triage WHERE attempt_id = ?
            ORDER BY id""",
            (attempt_id,),
        )
        return [_to_triage(row) for row in rows]

    def claims(self) -> dict[str, TriageEntry]:
        rows = self.query(  # the newest claim or release of each attempt, when a claim
            f"""SELECT {_TRIAGE_COLUMNS}{self._event_extra} FROM triage WHERE action = 'claim'
            AND id IN (SELECT max(id) FROM triage WHERE action IN ('claim', 'release')
                       GROUP BY attempt_id)"""
        )
        return {entry.attempt_id: entry for entry in map(_to_triage, rows)}

    def audit_rows(self, since: datetime | None = None) -> Iterator[dict]:
        """Events and triage entries, each table read in order and merged by time."""
        events = self._audit_events(since)
        return heapq.merge(events, self._audit_triage(since), key=lambda row: row["event_at"])

    def _audit_triage(self, since: datetime | None) -> Iterator[dict]:
        extra, params = ("WHERE e.at >= ?", [self._since(since)]) if since is not None else ("", [])
        columns = ", ".join(_audit_triage_source(field, self._triage_recorded_by) for field in _AUDIT_COLUMNS)
        rows = self.query(f"{_AUDIT_TRIAGE_SELECT.format(columns=columns)} {extra} ORDER BY e.id", params)
        for row in rows:
            record = dict(zip((*_AUDIT_COLUMNS, "took_over"), row, strict=True))
            record["note"] = _took_over_note(record)
            yield self._audit_record(record)

    def _audit_record(self, record: dict) -> dict:
        """An audit row in export form: timestamps in ISO UTC, the amount in major units."""
        for name in ("event_at", "attempt_created_at"):
            record[name] = iso(moment(record[name]))
        record["amount"] = Money(record["amount_minor"], record["currency"]).plain()
        return {field: record.get(field) for field in AUDIT_FIELDS}

    def _audit_events(self, since: datetime | None) -> Iterator[dict]:
        """Read in chunks, so the ledger stays usable while a long export is written."""
        after = 0
        extra, params = ("AND e.at >= ?", [self._since(since)]) if since is not None else ("", [])
        columns = ", ".join(_audit_source(field, self._audit_recorded_by) for field in _AUDIT_COLUMNS)
        while True:
            rows = self.query(
                f"{_AUDIT_SELECT.format(columns=columns)} WHERE e.id > ? "
                f"{extra} ORDER BY e.id LIMIT {_AUDIT_CHUNK}",
                [after, *params],
            )
            for row in rows:
                yield self._audit_record(dict(zip(_AUDIT_COLUMNS, row, strict=True)))
            if len(rows) < _AUDIT_CHUNK:
                return
            after = rows[-1][0]
