"""The append-only refund ledger: every attempt and every status change, in one SQLite file.

An attempt row is written, with its idempotency key, exact request body and operator, in the
same ``BEGIN IMMEDIATE`` transaction that checks the payment's refundable balance, and is
fsync'd (``synchronous=FULL``) before any byte goes to a provider. Attempts and events are
never updated or deleted (triggers refuse it); the current state of each attempt is derived
from its events by a trigger, so the board reads one indexed join.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from refund_tui import __version__
from refund_tui.core.ledger_schema import MIGRATIONS, PRAGMAS, SCHEMA_VERSION
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.operator import Operator
from refund_tui.providers.base import RefundRequest

__all__ = [
    "AUDIT_FIELDS",
    "Acknowledgement",
    "Attempt",
    "AttemptNotFound",
    "BatchRow",
    "BatchRowRecorded",
    "CapExceeded",
    "Event",
    "Ledger",
    "LedgerError",
    "LedgerLost",
    "RefundInFlight",
    "NewAttempt",
    "Operator",
]

#: Seconds a write waits for another process's write before giving up.
BUSY_TIMEOUT = 5.0
#: Shortest attempt-id prefix ``Ledger.get`` accepts.
MIN_PREFIX = 4
UNRESOLVED = (RefundStatus.PENDING, RefundStatus.PROCESSING, RefundStatus.UNKNOWN)
_HOLDING = tuple(status.value for status in RefundStatus if status.holds_balance)
_AUDIT_CHUNK = 1000
#: Value -> member, much faster than calling the enum when building 100,000 rows.
_PROVIDER_BY_VALUE = {provider.value: provider for provider in ProviderName}
_STATUS_BY_VALUE = {status.value: status for status in RefundStatus}


class LedgerError(Exception):
    """The ledger cannot be opened or used; the message says why and what to do."""


class LedgerLost(LedgerError):
    """The file at the ledger's path is no longer the one this process writes to (deleted
    or replaced while open): what was just written may be recorded nowhere."""


class AttemptNotFound(KeyError):
    """No attempt matches the id, id prefix or provider reference."""

    def __str__(self) -> str:
        return str(self.args[0])


class CapExceeded(Exception):
    """Recording the attempt would refund more than the payment has left."""

    def __init__(self, remaining: Money, payment_reference: str) -> None:
        super().__init__(
            f"only {remaining.format()} left to refund on {payment_reference} "
            "once refunds in flight are counted"
        )
        self.remaining = remaining
        self.payment_reference = payment_reference


class BatchRowRecorded(Exception):
    """This row of a batch file already has its attempt: it is never sent again."""

    def __init__(self, attempt_id: str) -> None:
        super().__init__(f"this batch row was already recorded as attempt {attempt_id[:8]}")
        self.attempt_id = attempt_id


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A row of a batch file: the hash of the file's rows and the row's number (from 1)."""

    batch_id: str
    row: int


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An operator's note on a reconciliation finding."""

    finding_id: str
    note: str
    at: datetime
    operator: str


class RefundInFlight(CapExceeded):
    """Another refund of the payment has no known outcome yet: a new one could pay twice."""

    def __init__(self, attempt_id: str, payment_reference: str, currency: str) -> None:
        Exception.__init__(
            self,
            f"refund {attempt_id[:8]} of {payment_reference} is still in flight with no known "
            "outcome: resolve it first (refund-tui recover, or its details); a new refund now "
            "could pay the customer twice",
        )
        self.remaining = Money.zero(currency)
        self.payment_reference = payment_reference
        self.attempt_id = attempt_id


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """A refund attempt about to be recorded (and then sent)."""

    profile: str
    environment: str
    provider: ProviderName
    payment_reference: str
    amount: Money
    phone: str
    country_id: str | None
    reason: str
    webhook_url: str | None
    request: RefundRequest
    operator: Operator
    retry_of: str | None = None
    batch_row: BatchRow | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """A recorded attempt with its current state."""

    attempt_id: str
    created_at: datetime
    profile: str
    environment: str
    provider: ProviderName
    payment_reference: str
    amount: Money
    phone: str
    country_id: str | None
    reason: str
    webhook_url: str | None
    request: RefundRequest
    operator: Operator
    pid: int
    app_version: str
    retry_of: str | None
    status: RefundStatus
    provider_reference: str | None
    failure_reason: str | None
    raw_code: str | None
    raw_message: str | None
    updated_at: datetime
    flagged: bool
    #: Provider references of further refunds carrying this attempt's tag (paid twice).
    double_refunds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    """One status change of an attempt."""

    at: datetime
    status: RefundStatus
    source: str
    provider_reference: str | None
    failure_reason: str | None
    raw_code: str | None
    raw_message: str | None
    http_status: int | None
    note: str | None


_ATTEMPT_COLUMNS = (
    "a.attempt_id, a.created_at, a.profile, a.environment, a.provider, a.payment_reference, "
    "a.amount_minor, a.currency, a.phone, a.country_id, a.reason, a.webhook_url, "
    "a.idempotency_key, a.external_reference, a.request_method, a.request_path, "
    "a.request_body, a.operator_name, a.operator_uid, a.hostname, a.ssh_client, a.pid, "
    "a.app_version, a.retry_of, c.status, c.provider_reference, c.failure_reason, "
    "c.raw_code, c.raw_message, c.updated_at, c.flagged, "
    "(SELECT group_concat(d.second_reference) FROM double_refunds d "
    "WHERE d.attempt_id = a.attempt_id)"
)
_ATTEMPTS_FROM = "FROM attempts a JOIN current_state c ON c.attempt_seq = a.seq"
_EVENT_COLUMNS = (
    "at, status, source, provider_reference, failure_reason, raw_code, raw_message, "
    "http_status, note"
)
_AUDIT_SELECT = """SELECT e.id AS event_id, e.at AS event_at, e.status, e.source,
    e.provider_reference, e.failure_reason, e.raw_code, e.raw_message, e.http_status, e.note,
    a.attempt_id, a.created_at AS attempt_created_at, a.profile, a.environment, a.provider,
    a.payment_reference, a.amount_minor, a.currency, a.phone, a.country_id, a.reason,
    a.webhook_url, a.idempotency_key, a.external_reference, a.request_method, a.request_path,
    a.request_body, a.operator_name, a.operator_uid, a.hostname, a.ssh_client, a.pid,
    a.app_version, a.retry_of
    FROM events e JOIN attempts a ON a.attempt_id = e.attempt_id"""
#: Keys of each ``Ledger.audit_rows`` dict, in export order (``amount`` is in major units).
AUDIT_FIELDS = (
    "event_id", "event_at", "status", "source", "provider_reference", "failure_reason",
    "raw_code", "raw_message", "http_status", "note", "attempt_id", "attempt_created_at",
    "profile", "environment", "provider", "payment_reference", "amount", "amount_minor",
    "currency", "phone", "country_id", "reason", "webhook_url", "idempotency_key",
    "external_reference", "request_method", "request_path", "request_body", "operator_name",
    "operator_uid", "hostname", "ssh_client", "pid", "app_version", "retry_of",
)  # fmt: skip


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("give an aware datetime (UTC), not a naive one")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _to_attempt(row: tuple) -> Attempt:
    (attempt_id, created_at, profile, environment, provider, payment_reference, amount_minor,
     currency, phone, country_id, reason, webhook_url, idempotency_key, external_reference,
     method, path, body, operator_name, operator_uid, hostname, ssh_client, pid, app_version,
     retry_of, status, provider_reference, failure_reason, raw_code, raw_message, updated_at,
     flagged, double_refunds) = row  # fmt: skip
    provider = _PROVIDER_BY_VALUE[provider]
    return Attempt(
        attempt_id=attempt_id,
        created_at=datetime.fromisoformat(created_at),
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
        updated_at=datetime.fromisoformat(updated_at),
        flagged=bool(flagged),
        double_refunds=tuple(double_refunds.split(",")) if double_refunds else (),
    )


def _to_event(row: tuple) -> Event:
    at, status, *rest = row
    return Event(datetime.fromisoformat(at), _STATUS_BY_VALUE[status], *rest)


def _may_follow(current: RefundStatus, new: RefundStatus) -> bool:
    """Whether a refund may move from ``current`` to ``new``."""
    if current.is_terminal:
        return new is current or (current, new) == (RefundStatus.COMPLETED, RefundStatus.REVERSED)
    return (current, new) != (RefundStatus.PROCESSING, RefundStatus.PENDING)


def _check_new(new: NewAttempt, limit: Money) -> None:
    """Refuse an attempt whose parts contradict each other (a programming error)."""
    if new.environment not in ("sandbox", "live"):
        raise ValueError(f"environment must be 'sandbox' or 'live', not {new.environment!r}")
    if (new.request.provider, new.request.payment_reference) != (
        new.provider,
        new.payment_reference,
    ):
        raise ValueError("the request is for a different provider or payment than the attempt")
    if new.request.amount != new.amount:
        raise ValueError("the request sends a different amount than the attempt records")
    if new.amount.minor <= 0:
        raise ValueError("a refund amount must be more than zero")
    if new.amount.currency != limit.currency:
        raise ValueError(f"limit in {limit.currency} for a refund in {new.amount.currency}")


class ChangeWatch:
    """Tells, cheaply, whether anyone else committed to the ledger since the last look.

    Its own connection reads ``PRAGMA data_version``, which moves when another connection -
    another process (the webhook receiver), or this process's ledger - commits. Never
    raises: a ledger it cannot read counts as unchanged (the periodic refresh reports it).
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._version = self._read()

    def _read(self) -> int | None:
        try:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return None

    def changed(self) -> bool:
        version = self._read()
        if version is None or version == self._version:
            return False
        self._version = version
        return True

    def close(self) -> None:
        self._conn.close()


class Ledger:
    """One ledger file. Safe to share between threads; several processes may open it.

    Every write checks, before and after its commit, that the file at ``path`` is still the
    one this ledger writes to; one deleted or replaced meanwhile raises LedgerLost.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.clock = clock or utcnow
        self._lock = threading.RLock()
        self._conn = self._connect()
        try:
            self._file = self._pin_file()
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- opening ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as error:
            raise LedgerError(f"cannot open the ledger {self.path}: {error.strerror}") from None
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            with self._translate():
                mode = conn.execute(PRAGMAS[0]).fetchone()[0]
                for pragma in PRAGMAS[1:]:
                    conn.execute(pragma)
                conn.execute(f"PRAGMA busy_timeout = {round(self.busy_timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        if mode != "wal":
            conn.close()
            raise LedgerError(
                f"the ledger {self.path} cannot use write-ahead logging (journal mode {mode!r}); "
                "keep it on a local disk, not a network share"
            )
        return conn

    def _pin_file(self) -> os.stat_result:
        """The identity (device, inode) of the file the connection just opened."""
        try:
            pinned = os.stat(self.path)
        except OSError as error:
            raise LedgerError(f"cannot open the ledger {self.path}: {error.strerror}") from None
        self._conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        return pinned

    def check_file(self) -> None:
        """Raise LedgerLost unless ``path`` is still the file this ledger writes to."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            raise LedgerLost(
                f"the ledger {self.path} was deleted while refund-tui was writing to it"
            ) from None
        except OSError as error:
            raise LedgerLost(f"the ledger {self.path} cannot be checked: {error.strerror}") from None
        if (now.st_dev, now.st_ino) != (self._file.st_dev, self._file.st_ino):
            raise LedgerLost(
                f"the ledger {self.path} was replaced by another file while refund-tui was "
                "writing to it"
            )

    @property
    def ledger_id(self) -> str:
        """This ledger's random identity, written once when it was created."""
        [(ledger_id,)] = self.query("SELECT ledger_id FROM ledger_identity")
        return ledger_id

    def _migrate(self) -> None:
        version = self._user_version()
        if version < SCHEMA_VERSION:
            with self.transaction() as conn:
                version = self._user_version()
                tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
                if version == 0 and tables:
                    raise LedgerError(f"{self.path} is an SQLite file but not a refund-tui ledger")
                for migration in MIGRATIONS[version:]:
                    for statement in migration:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {max(version, SCHEMA_VERSION)}")
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self.path} was written by a newer refund-tui (schema version "
                f"{version}; this version {__version__} knows up to {SCHEMA_VERSION}): "
                "upgrade refund-tui to use it"
            )

    def _user_version(self) -> int:
        with self._lock, self._translate():
            return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def change_watch(self) -> ChangeWatch:
        """A watch on this ledger file for changes committed by any other connection."""
        return ChangeWatch(self.path)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn SQLite's errors into LedgerError messages an operator can act on."""
        try:
            yield
        except sqlite3.OperationalError as error:
            text = str(error)
            if "locked" in text or "busy" in text:
                raise LedgerError(
                    f"the ledger {self.path} is busy: another refund-tui process held it for "
                    f"over {self.busy_timeout:g} s; try again"
                ) from None
            raise LedgerError(f"the ledger {self.path} cannot be used: {text}") from None
        except sqlite3.IntegrityError as error:
            raise LedgerError(f"the ledger refused the change: {error}") from None
        except sqlite3.DatabaseError as error:
            raise LedgerError(f"{self.path} is not a readable refund-tui ledger: {error}") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on success, else rolled back.

        Public for the modules that keep their own tables in the ledger file (notices).
        """
        with self._lock, self._translate():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self.check_file()
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        self.check_file()

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock, self._translate():
            return self._conn.execute(sql, params).fetchall()

    def _select(
        self, where: str, params: list, *, newest_first: bool = True, limit: int | None = None
    ) -> list[Attempt]:
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {_ATTEMPT_COLUMNS} {_ATTEMPTS_FROM} {where} ORDER BY c.attempt_seq {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, limit]
        return [_to_attempt(row) for row in self.query(sql, params)]

    # -- writing ------------------------------------------------------------------------

    def record_attempt(
        self, new: NewAttempt, *, limit: Money, known_references: Collection[str]
    ) -> Attempt:
        """Check the cap and record the attempt with its first event, durably, in one go.

        ``limit`` is what the provider says is left to refund; ``known_references`` are the
        refunds the provider already reports, so they are not counted twice. Raises
        CapExceeded when this attempt plus the ledger's refunds in flight would exceed it;
        RefundInFlight while another attempt of the payment has no provider reference yet
        (being sent, or of unknown outcome): it may have paid already; BatchRowRecorded when
        ``new.batch_row`` already has its attempt.
        """
        _check_new(new, limit)
        known = set(known_references)
        attempt_id = str(uuid.uuid4())
        now = self._stamp()
        request = new.request
        with self.transaction() as conn:
            if new.batch_row is not None:
                self._check_batch_row(conn, new.batch_row)
            held = conn.execute(
                f"""SELECT a.amount_minor, a.currency, c.provider_reference, a.attempt_id
                {_ATTEMPTS_FROM} WHERE a.provider = ? AND a.payment_reference = ?
                AND c.status IN ({", ".join("?" * len(_HOLDING))})""",
                (new.provider.value, new.payment_reference, *_HOLDING),
            ).fetchall()
            for *_, reference, other in held:
                if reference is None:
                    raise RefundInFlight(other, new.payment_reference, limit.currency)
            in_flight = Money.zero(limit.currency)
            for amount_minor, currency, reference, _ in held:
                if reference is None or reference not in known:
                    in_flight = in_flight + Money(amount_minor, currency)
            if in_flight + new.amount > limit:
                remaining = max(limit - in_flight, Money.zero(limit.currency))
                raise CapExceeded(remaining, new.payment_reference)
            conn.execute(
                """INSERT INTO attempts (attempt_id, created_at, profile, environment, provider,
                payment_reference, amount_minor, currency, phone, country_id, reason,
                webhook_url, idempotency_key, external_reference, request_method, request_path,
                request_body, operator_name, operator_uid, hostname, ssh_client, pid,
                app_version, retry_of)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    attempt_id, now, new.profile, new.environment, new.provider.value,
                    new.payment_reference, new.amount.minor, new.amount.currency, new.phone,
                    new.country_id, new.reason, new.webhook_url, request.idempotency_key,
                    request.external_reference, request.method, request.path, request.body,
                    new.operator.name, new.operator.uid, new.operator.hostname,
                    new.operator.ssh_client, os.getpid(), __version__, new.retry_of,
                ),
            )  # fmt: skip
            self._insert_event(conn, attempt_id, RefundStatus.PENDING, "intent", at=now)
            if new.batch_row is not None:
                conn.execute(
                    "INSERT INTO batch_rows (batch_id, row, attempt_id) VALUES (?, ?, ?)",
                    (new.batch_row.batch_id, new.batch_row.row, attempt_id),
                )
        with self._lock, self._translate():  # into the main file: a lost -wal cannot lose it
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return self.get(attempt_id)

    @staticmethod
    def _check_batch_row(conn: sqlite3.Connection, batch_row: BatchRow) -> None:
        found = conn.execute(
            "SELECT attempt_id FROM batch_rows WHERE batch_id = ? AND row = ?",
            (batch_row.batch_id, batch_row.row),
        ).fetchone()
        if found is not None:
            raise BatchRowRecorded(found[0])

    def acknowledge_finding(
        self, finding_id: str, *, kind: str, provider: ProviderName, payment_reference: str,
        note: str, operator: Operator,
    ) -> Acknowledgement:  # fmt: skip
        """Record an operator's note on a reconciliation finding (kept, never changed)."""
        if not note.strip():
            raise ValueError("say what you found: the note is required")
        at = self._stamp()
        with self.transaction() as conn:
            conn.execute(
                """INSERT INTO finding_acks (finding_id, kind, provider, payment_reference, note,
                acked_at, operator_name, hostname) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (finding_id, kind, ProviderName(provider).value, payment_reference, note.strip(),
                 at, operator.name, operator.hostname),
            )  # fmt: skip
        return Acknowledgement(finding_id, note.strip(), datetime.fromisoformat(at), f"{operator.name}@{operator.hostname}")

    def acknowledgements(self) -> dict[str, Acknowledgement]:
        """Finding id -> its newest acknowledgement."""
        rows = self.query(
            "SELECT finding_id, note, acked_at, operator_name || '@' || hostname FROM finding_acks ORDER BY id"
        )
        return {row[0]: Acknowledgement(row[0], row[1], datetime.fromisoformat(row[2]), row[3]) for row in rows}

    def batch_attempts(self, batch_id: str) -> dict[int, str]:
        """Row number -> attempt id, for every row of the batch already recorded."""
        rows = self.query("SELECT row, attempt_id FROM batch_rows WHERE batch_id = ?", (batch_id,))
        return dict(rows)

    def add_event(
        self, attempt_id: str, status: RefundStatus, source: str, **details: str | int | None
    ) -> bool:
        """Append a status change; False (nothing written) when it tells nothing new or
        contradicts what is known.

        Nothing new: the same status, no reference or failure reason that differs from what
        the attempt already has, and no note (an event with a note, such as the answer to a
        resend, is always kept). Contradictions are refused: leaving a final status
        (except completed -> reversed), processing -> pending (a replayed first answer), a
        second, different provider reference, or a reference another attempt already holds.
        ``details``: the keyword arguments of ``append_status``.
        """
        with self.transaction() as conn:
            return self.append_status(conn, attempt_id, RefundStatus(status), source, **details)

    def append_status(
        self,
        conn: sqlite3.Connection,
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
        """``add_event`` inside a transaction the caller holds (see ``transaction``)."""
        current, reference, failure = self.current(conn, attempt_id)
        if (
            status == current
            and provider_reference in (None, reference)
            and failure_reason in (None, failure)
            and note is None
        ):
            return False
        if not _may_follow(RefundStatus(current), status) or not self._reference_free(
            conn, attempt_id, reference, provider_reference
        ):
            return False
        self._insert_event(
            conn, attempt_id, status, source,
            provider_reference=provider_reference, failure_reason=failure_reason,
            raw_code=raw_code, raw_message=raw_message, http_status=http_status, note=note,
        )  # fmt: skip
        return True

    def claim_send(
        self, attempt_id: str, lease: timedelta, note: str = "resending the stored request"
    ) -> bool:
        """Claim the right to (re)send an attempt's stored request; False if it is settled or
        another send may still be executing.

        A send may be executing from its "intent"/"send" event until a 4xx answer is recorded
        (a refusal: the request is over), or until ``lease`` has passed — a 5xx from a gateway
        does not prove the provider stopped. The claim is itself a "send" event, written in the
        same transaction, so two processes (or two tasks) never both resend.
        """
        with self.transaction() as conn:
            status, reference, failure = self.current(conn, attempt_id)
            if reference is not None or RefundStatus(status).is_terminal:
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
            since_send = self.clock() - datetime.fromisoformat(last_at)
            if not answered and since_send < lease:
                return False
            raw_code, raw_message = conn.execute(
                f"SELECT c.raw_code, c.raw_message {_ATTEMPTS_FROM} WHERE a.attempt_id = ?",
                (attempt_id,),
            ).fetchone()
            self._insert_event(
                conn, attempt_id, RefundStatus(status), "send", failure_reason=failure,
                raw_code=raw_code, raw_message=raw_message, note=note,
            )  # fmt: skip
        return True

    def record_double_refund(self, attempt_id: str, reference: str, second: str, note: str) -> bool:
        """Record that ``second`` is another execution of the attempt whose refund is
        ``reference``, and flag the attempt; False (nothing written) when already known."""
        with self.transaction() as conn:
            known = conn.execute(
                "SELECT 1 FROM double_refunds WHERE attempt_id = ? AND second_reference = ?",
                (attempt_id, second),
            ).fetchone()
            if known:
                return False
            conn.execute(
                """INSERT INTO double_refunds
                (attempt_id, found_at, provider_reference, second_reference) VALUES (?, ?, ?, ?)""",
                (attempt_id, self._stamp(), reference, second),
            )
            self.append_flag(conn, attempt_id, note)
        return True

    def double_refund_count(self) -> int:
        """How many attempts were executed more than once by their provider."""
        [(count,)] = self.query("SELECT count(DISTINCT attempt_id) FROM double_refunds")
        return count

    @staticmethod
    def _reference_free(
        conn: sqlite3.Connection, attempt_id: str, current: str | None, new: str | None
    ) -> bool:
        """True unless ``new`` replaces this attempt's reference or belongs to another attempt."""
        if new is None or new == current:
            return True
        if current is not None:
            return False
        taken = conn.execute(
            """SELECT 1 FROM current_state c JOIN attempts a ON a.seq = c.attempt_seq
            WHERE c.provider_reference = ? AND a.attempt_id != ? LIMIT 1""",
            (new, attempt_id),
        ).fetchone()
        return taken is None

    def flag(self, attempt_id: str, note: str) -> None:
        """Mark the attempt for manual reconciliation; its status stays as it is."""
        if not note.strip():
            raise ValueError("say why the refund needs manual reconciliation")
        with self.transaction() as conn:
            self.append_flag(conn, attempt_id, note.strip())

    def append_flag(self, conn: sqlite3.Connection, attempt_id: str, note: str) -> None:
        """``flag`` inside a transaction the caller holds (see ``transaction``)."""
        status, reference, failure = self.current(conn, attempt_id)
        self._insert_event(
            conn, attempt_id, RefundStatus(status), "flag",
            provider_reference=reference, failure_reason=failure, note=note,
        )  # fmt: skip

    @staticmethod
    def current(conn: sqlite3.Connection, attempt_id: str) -> tuple[str, str | None, str | None]:
        row = conn.execute(
            f"""SELECT c.status, c.provider_reference, c.failure_reason {_ATTEMPTS_FROM}
            WHERE a.attempt_id = ?""",
            (attempt_id,),
        ).fetchone()
        if row is None:
            raise AttemptNotFound(f"no refund attempt {attempt_id}")
        return row

    def _stamp(self) -> str:
        return _iso(self.clock())

    def _insert_event(
        self,
        conn: sqlite3.Connection,
        attempt_id: str,
        status: RefundStatus,
        source: str,
        *,
        at: str | None = None,
        provider_reference: str | None = None,
        failure_reason: str | None = None,
        raw_code: str | None = None,
        raw_message: str | None = None,
        http_status: int | None = None,
        note: str | None = None,
    ) -> None:
        conn.execute(
            f"INSERT INTO events (attempt_id, {_EVENT_COLUMNS}) VALUES ({', '.join('?' * 10)})",
            (
                attempt_id, at or self._stamp(), status.value, source, provider_reference,
                failure_reason, raw_code, raw_message, http_status, note,
            ),
        )  # fmt: skip

    # -- reading ------------------------------------------------------------------------

    def get(self, key: str) -> Attempt:
        """The attempt with this id, unique id prefix, or provider reference."""
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
        """The attempt's status changes, oldest first."""
        rows = self.query(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE attempt_id = ? ORDER BY id", (attempt_id,)
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
        limit: int | None = None,
    ) -> list[Attempt]:
        """Attempts with their current state, newest first, optionally filtered."""
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
            params.append(_iso(since))
        if retry_of is not None:
            clauses.append("a.retry_of = ?")
            params.append(retry_of)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select(where, params, limit=limit)

    def unresolved(self) -> list[Attempt]:
        """Attempts still pending, processing or unknown, oldest first."""
        placeholders = ", ".join("?" * len(UNRESOLVED))
        return self._select(
            f"WHERE c.status IN ({placeholders})",
            [status.value for status in UNRESOLVED],
            newest_first=False,
        )

    def counts(self) -> dict[RefundStatus, int]:
        """How many attempts are in each status (every status present, zero included); a
        failed attempt that was retried no longer counts as failed."""
        totals = dict.fromkeys(RefundStatus, 0)
        rows = self.query("SELECT status, count(*) FROM current_state GROUP BY status")
        for status, count in rows:
            totals[_STATUS_BY_VALUE[status]] = count
        [(retried,)] = self.query(
            f"""SELECT count(*) FROM attempts r JOIN attempts a ON a.attempt_id = r.retry_of
            JOIN current_state c ON c.attempt_seq = a.seq
            WHERE r.retry_of IS NOT NULL AND c.status = '{RefundStatus.FAILED.value}'"""
        )
        totals[RefundStatus.FAILED] -= retried
        return totals

    def retried_ids(self) -> set[str]:
        """Ids of the attempts a later attempt retried."""
        rows = self.query("SELECT DISTINCT retry_of FROM attempts WHERE retry_of IS NOT NULL")
        return {attempt_id for (attempt_id,) in rows}

    def payments(self) -> list[tuple[ProviderName, str]]:
        """Every (provider, payment reference) the ledger has an attempt for."""
        rows = self.query("SELECT DISTINCT provider, payment_reference FROM attempts")
        return [(ProviderName(provider), reference) for provider, reference in rows]

    def needing_attention(
        self, stuck_before: Mapping[ProviderName, datetime], limit: int
    ) -> tuple[list[Attempt], int]:
        """The newest ``limit`` attempts an operator must look at, and how many there are.

        Failed (unless retried), unknown, reversed or flagged, and pending or processing since
        before their provider's ``stuck_before``.
        """
        stuck = " OR ".join("(a.provider = ? AND a.created_at < ?)" for _ in stuck_before) or "0"
        where = f"""WHERE (c.status IN (?, ?, ?) OR c.flagged
            OR (c.status IN (?, ?) AND ({stuck})))
            AND NOT (c.status = ? AND NOT c.flagged
                     AND a.attempt_id IN (SELECT retry_of FROM attempts WHERE retry_of IS NOT NULL))"""
        params: list = [
            RefundStatus.FAILED.value, RefundStatus.UNKNOWN.value, RefundStatus.REVERSED.value,
            RefundStatus.PENDING.value, RefundStatus.PROCESSING.value,
        ]  # fmt: skip
        for provider, moment in stuck_before.items():
            params += [ProviderName(provider).value, _iso(moment)]
        params.append(RefundStatus.FAILED.value)
        [(total,)] = self.query(f"SELECT count(*) {_ATTEMPTS_FROM} {where}", params)
        return self._select(where, params, limit=limit), total

    def audit_rows(self, since: datetime | None = None) -> Iterator[dict]:
        """One flat dict per event (keys: AUDIT_FIELDS) joined with its attempt, oldest first.

        Read in chunks, so the ledger stays usable while a long export is written.
        """
        after = 0
        extra, params = ("AND e.at >= ?", [_iso(since)]) if since is not None else ("", [])
        while True:
            with self._lock, self._translate():
                cursor = self._conn.execute(
                    f"{_AUDIT_SELECT} WHERE e.id > ? {extra} ORDER BY e.id LIMIT {_AUDIT_CHUNK}",
                    [after, *params],
                )
                names = [column[0] for column in cursor.description]
                rows = cursor.fetchall()
            for row in rows:
                record = dict(zip(names, row, strict=True))
                record["amount"] = Money(record["amount_minor"], record["currency"]).plain()
                yield {field: record[field] for field in AUDIT_FIELDS}
            if len(rows) < _AUDIT_CHUNK:
                return
            after = rows[-1][0]
