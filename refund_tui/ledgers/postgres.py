"""The team ledger on PostgreSQL: every operator, on-call engineer and receiver on one ledger.

psycopg 3 with a small connection pool, no ORM: the queries are ``SqlLedger``'s. What this
adapter adds:
- exactly-once across hosts: each write is one transaction that first takes
  transaction-scoped advisory locks (the payment for a cap check and intent, the attempt for
  a status change or resend claim, the notice for its receipt), so check-then-insert never
  races; serialization failures and deadlocks (40001, 40P01) are retried, never shown;
- the database's clock for every timestamp, resend leases included (``clock_timestamp()``);
- identity, append-only and the hash chain enforced by the database (``postgres_schema``);
- a change watch on LISTEN/NOTIFY.

The schema is created and migrated by ``setup`` (the database owner, once); opening a ledger
only checks that its version is the one this refund-tui knows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from refund_tui import __version__
from refund_tui.config import masked_url
from refund_tui.core.approvals import ApprovalRules, Decision
from refund_tui.core.ledger import (
    ApprovalRefused,
    Attempt,
    DailyLimitExceeded,
    LedgerError,
    NewAttempt,
    NoticeOutcome,
    Operator,
)
from refund_tui.core.models import RefundStatus
from refund_tui.core.money import Money, minor_units
from refund_tui.core.secret import Secret
from refund_tui.ledgers import chain
from refund_tui.ledgers.importing import ImportReport, merge, read_solo
from refund_tui.ledgers.postgres_schema import (
    APPROVER,
    GRANTS,
    MIGRATIONS,
    OVER_DAILY_LIMIT,
    REFUSED_BY_RULES,
    ROLES,
    SCHEMA_VERSION,
    canonical_row,
)
from refund_tui.ledgers.sql import Connection, Cursor, SqlLedger, iso

DEFAULT_SCHEMA = "refund_tui"
CONNECT_TIMEOUT = 5
#: Seconds a call waits for a pooled connection before the ledger counts as unreachable.
POOL_TIMEOUT = 10.0
#: Attempts at a transaction the database aborted to keep concurrent ones serialisable.
RETRIES = 8
#: Seconds between attempts to re-open a lost change watch.
RECONNECT_INTERVAL = 0.5
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_WHERE_FAILED = re.compile(r"^connection failed: (connection to server .*? failed: )?")
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)
#: The approval rules in force (no row: none set).
_RULES_NOW = "SELECT above, expires_hours, daily_limit FROM rules_now() WHERE id IS NOT NULL"

T = TypeVar("T")
log = logging.getLogger("refund_tui.ledger")

# The pool logs each failed reconnection: for an application that configures logging (the
# receiver), not as stray lines on a command's or the console's terminal.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


@lru_cache(maxsize=512)
def _dialect(statement: str) -> str:
    """``SqlLedger``'s ``?`` placeholders as psycopg's ``%s``."""
    return statement.replace("%", "%%").replace("?", "%s")


class _Conn:
    """A psycopg connection speaking ``?`` placeholders, for ``SqlLedger``."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, statement: str, params: tuple | list = ()) -> Cursor:
        return self._conn.execute(_dialect(statement), params)


def where(url: str) -> str:
    """``role@host:port/db`` of a connection string (never its password), for messages."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unreadable PostgreSQL URL"
    role = parts.get("user") or "(your login name)"
    host = parts.get("host") or "the local socket"
    return f"role {role} at {host}:{parts.get('port') or 5432}/{parts.get('dbname') or role}"


def identity_key(url: str, schema: str) -> str:
    """Which team ledger a URL names, whoever connects: server, database and schema."""
    parts = conninfo_to_dict(url)
    return (f"postgresql://{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/"
            f"{parts.get('dbname') or parts.get('user') or ''}#{schema}")  # fmt: skip


def connection_options(schema: str, password: Secret | None) -> dict[str, Any]:
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"not a schema name: {schema!r}")
    options = {
        "options": f"-c search_path={schema} -c TimeZone=UTC",
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": f"refund-tui {__version__}",
    }
    if password is not None:
        options["password"] = password.reveal()
    return options


class PasswordWanted(LedgerError):
    """The server asks for a password that libpq's own sources did not give."""


#: Where the password comes from when libpq's own sources give none: the keyring's
#: ``ledger_password`` (``refund_tui.ledgers.keyring_password``). Raises LedgerError if none.
PasswordSource = Callable[[], Secret]


def connect(url: str, schema: str = DEFAULT_SCHEMA, password: Secret | None = None) -> psycopg.Connection:
    """One autocommit connection, or LedgerError naming host, port and role (never the
    password); PasswordWanted when the server asks for a password and libpq found none."""
    try:
        return psycopg.connect(url, autocommit=True, **connection_options(schema, password))
    except psycopg.Error as error:
        message = f"cannot reach the team ledger ({where(url)}): {_reason(error)}"
        # The server asked for a password that neither the URL's service file, PGPASSWORD
        # nor ~/.pgpass gave (libpq's PQconnectionNeedsPassword, on the failed connection).
        if password is None and error.pgconn is not None and error.pgconn.needs_password:
            raise PasswordWanted(message) from None
        raise LedgerError(message) from None


def connect_as(url: str, schema: str, password: Secret | None,
               source: PasswordSource | None) -> tuple[psycopg.Connection, Secret | None]:  # fmt: skip
    """``connect``; when libpq had no password to send, again with ``source``'s. Returns the
    connection and the password that opened it (None: libpq's own)."""
    try:
        return connect(url, schema, password), password
    except PasswordWanted:
        if source is None:
            raise
    password = source()
    return connect(url, schema, password), password


def _reason(error: BaseException) -> str:
    """The first line of a driver's message (the server's own words), for one-line messages."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return _WHERE_FAILED.sub("", text.splitlines()[0])  # the caller names where already


class PostgresChangeWatch:
    """LISTENs on the schema's channel (every write NOTIFYs it at commit). A lost connection
    is re-opened in the background (every RECONNECT_INTERVAL) while ``lost`` says why, and
    is reported once as a change when back: missed notifications mean everything must be
    read again."""

    def __init__(self, open_connection: Callable[[], psycopg.Connection], channel: str) -> None:
        self._open = open_connection
        self._channel = channel
        self._conn: psycopg.Connection | None = None
        self._closed = False
        self._reconnected = False
        self._lock = threading.Lock()
        self.lost: str | None = None
        if not self._listen():
            self._start_reconnecting()

    def _listen(self) -> bool:
        try:
            conn = self._open()
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except (LedgerError, psycopg.Error) as error:
            self.lost = _reason(error)
            return False
        with self._lock:
            if self._closed:
                conn.close()
                return True
            self._conn = conn
        return True

    def changed(self) -> bool:
        with self._lock:
            conn = self._conn
            if conn is None:
                return False
            if self._reconnected:
                self._reconnected = False
                return True
        try:
            return any(True for _ in conn.notifies(timeout=0))
        except psycopg.Error as error:
            with self._lock:
                self._conn = None
            self.lost = f"the team ledger cannot be reached: {_reason(error)}"
            conn.close()
            self._start_reconnecting()
            return False

    def _start_reconnecting(self) -> None:
        threading.Thread(target=self._reconnect, name="ledger-watch", daemon=True).start()

    def _reconnect(self) -> None:
        while not self._closed and not self._listen():
            time.sleep(RECONNECT_INTERVAL)
        self.lost = None
        self._reconnected = True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()


class PostgresLedger(SqlLedger):
    """The ledger in one schema of a PostgreSQL database. Safe to share between threads."""

    _double_refunds_column = (
        "(SELECT string_agg(d.second_reference, ',' ORDER BY d.id) FROM double_refunds d "
        "WHERE d.attempt_id = a.attempt_id)"
    )
    _attempt_extra = ", a.recorded_by"
    _event_extra = ", recorded_by"
    _audit_recorded_by = "e.recorded_by"
    _triage_recorded_by = "e.recorded_by"
    _chained = chain.tables(postgres=True)
    _made_by_column = "a.recorded_by"

    def __init__(
        self,
        url: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        password: Secret | None = None,
        password_source: PasswordSource | None = None,
        pool_size: int = 4,
    ) -> None:
        self.url = url
        self.location = masked_url(url)
        self.schema = schema
        first, password = connect_as(url, schema, password, password_source)
        self._password = password
        with first:
            self.role = first.execute("SELECT session_user").fetchone()[0]
            with self._translate():
                self._check_version(first)
        self._pool = ConnectionPool(
            url,
            kwargs={"autocommit": True, **connection_options(schema, password)},
            min_size=1,
            max_size=pool_size,
            timeout=POOL_TIMEOUT,
            check=ConnectionPool.check_connection,  # a restarted server or killed backend
            name="refund-tui-ledger",
            open=True,
        )

    def _check_version(self, conn: psycopg.Connection) -> None:
        version = schema_version(conn, self.schema)
        setup = "the database owner runs `refund-tui ledger setup`"
        if version is None:
            raise LedgerError(f"the team ledger ({where(self.url)}) has no refund-tui schema "
                              f"'{self.schema}' yet: {setup}")  # fmt: skip
        if version < SCHEMA_VERSION:
            raise LedgerError(f"the team ledger's schema is at version {version}, this "
                              f"refund-tui needs {SCHEMA_VERSION}: {setup} to migrate it")  # fmt: skip
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the team ledger was migrated by a newer refund-tui (schema version {version}; "
                f"this version {__version__} knows up to {SCHEMA_VERSION}): upgrade refund-tui"
            )

    def close(self) -> None:
        self._pool.close()

    def change_watch(self) -> PostgresChangeWatch:
        return PostgresChangeWatch(
            lambda: connect(self.url, self.schema, self._password), self.schema
        )

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _refusals(self) -> Iterator[None]:
        """The approval rules' refusals as ApprovalRefused and DailyLimitExceeded."""
        try:
            yield
        except psycopg.Error as error:
            if error.sqlstate == REFUSED_BY_RULES:
                raise ApprovalRefused(f"the team ledger refused it: {error.diag.message_primary}") from None
            if error.sqlstate == OVER_DAILY_LIMIT:
                currency, limit, left = (error.diag.message_detail or "").split()
                raise DailyLimitExceeded(
                    self.role, Money(int(limit), currency), Money(int(left), currency)
                ) from None
            raise

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn the database's refusals into LedgerError messages an operator can act on."""
        try:
            with self._refusals():
                yield
        except errors.InsufficientPrivilege as error:
            raise LedgerError(
                f"the team ledger refused role {self.role}: {error.diag.message_primary} "
                "(roles are granted with `refund-tui ledger grant`)"
            ) from None
        except errors.IntegrityError as error:
            raise LedgerError(f"the ledger refused the change: {error.diag.message_primary}") from None
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise LedgerError(f"the team ledger ({where(self.url)}) cannot be reached: "
                              f"{_reason(error)}") from None  # fmt: skip
        except psycopg.Error as error:
            raise LedgerError(f"the team ledger cannot be used: {error}") from None

    def _write(self, work: Callable[[Connection], T]) -> T:
        with self._translate():
            for tries in range(1, RETRIES + 1):
                try:
                    with self._pool.connection() as conn, conn.transaction():
                        return work(_Conn(conn))
                except _RETRYABLE as error:
                    if tries == RETRIES:
                        raise
                    log.info("retrying a ledger transaction the database aborted (%s, try %d): %s",
                             error.sqlstate, tries, error.diag.message_primary)  # fmt: skip
                    time.sleep(random.uniform(0, 0.005 * 2**tries))
        raise AssertionError("unreachable")

    def query(self, statement: str, params: tuple | list = ()) -> list[tuple]:
        with self._translate(), self._pool.connection() as conn:
            return conn.execute(_dialect(statement), params).fetchall()

    def _now(self, conn: Connection) -> datetime:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def _serialise(self, conn: Connection, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (key,))

    def _match_kept_notice(
        self, conn: Connection, notice_id: int, outcome: NoticeOutcome, attempt_id: str | None
    ) -> None:
        conn.execute("SELECT match_kept_notice(?, ?, ?)", (notice_id, outcome.value, attempt_id))

    def import_solo(self, path: Path) -> ImportReport:
        """Copy a solo SQLite ledger in (``importing``), in one transaction, at most once."""
        solo = read_solo(path)

        def write(conn: Connection) -> ImportReport:
            self._serialise(conn, "ledger:import")
            return merge(conn, solo)

        return self._write(write)

    def _snapshot(self, work: Callable[[Connection], T]) -> T:
        with self._translate(), self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return work(_Conn(conn))

    def _links(self, conn: Connection, table: str) -> list[tuple]:
        """The canonical form rendered by the expression the trigger uses; hashed in Python."""
        return conn.execute(
            f"""SELECT {', '.join(chain.LINK_COLUMNS)}, '{table}', {chain.CHAINED[table].shown}::text,
            {canonical_row(table, "t")} FROM {table} t"""
        ).fetchall()

    def _since(self, since: datetime) -> datetime:
        iso(since)  # refuses a naive datetime
        return since

    # -- approvals (the rules are the database's: ``postgres_schema._V4``) ---------------------

    def _intent_status(self, conn: Connection, new: NewAttempt) -> RefundStatus:
        conn.execute("SELECT lapse_waiting()")  # a lapsed request holds no balance
        [(status,)] = conn.execute(
            "SELECT intent_status(?, ?)", (new.amount.minor, new.amount.currency)
        ).fetchall()
        return RefundStatus(status)

    def approval_rules(self) -> ApprovalRules:
        rows = self.query(_RULES_NOW)
        return ApprovalRules.from_stored(*rows[0]) if rows else ApprovalRules()

    def may_approve(self) -> bool:
        [(holds,)] = self.query("SELECT pg_has_role(session_user, ?, 'USAGE')", (APPROVER,))
        return holds

    def awaiting_approval(self, *, mine: bool = False) -> list[Attempt]:
        if not mine and not self.may_approve():
            return []  # nothing waits for a role that may not approve
        with contextlib.suppress(LedgerError):  # a viewer reads them, lapsed or not
            self._write(lambda conn: conn.execute("SELECT lapse_waiting()"))
        whose = "=" if mine else "<>"
        return self._select(
            f"WHERE c.status = ? AND a.recorded_by {whose} session_user",
            [RefundStatus.AWAITING_APPROVAL.value],
            newest_first=False,
        )

    def decide(self, attempt_id: str, decision: Decision, reason: str, operator: Operator) -> Attempt:
        decision = Decision(decision)
        reason = reason.strip()
        if decision is Decision.DENIED and not reason:
            raise ValueError("say why the refund is denied: the reason is required")

        def write(conn: Connection) -> None:
            self._current(conn, attempt_id)  # locks it; AttemptNotFound when there is none
            self._append(conn, "approvals", {
                "attempt_id": attempt_id, "decision": decision.value, "reason": reason or None,
                "operator_name": operator.name, "hostname": operator.hostname,
                "ssh_client": operator.ssh_client,
            })  # fmt: skip
            if decision is Decision.APPROVED:
                self._insert_event(
                    conn, attempt_id, RefundStatus.PENDING, "send",
                    note=f"claimed to send once approved, by {operator.name}@{operator.hostname}",
                )  # fmt: skip

        try:
            self._write(write)
        except ApprovalRefused:
            with contextlib.suppress(LedgerError):  # a lapsed request is recorded as such
                self._write(lambda conn: conn.execute("SELECT lapse_waiting()"))
            raise
        return self.get(attempt_id)


# -- setup and roles (run by the database owner) -------------------------------------------


def schema_version(conn: psycopg.Connection, schema: str) -> int | None:
    """The schema's migration version, or None when it has none."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.schema_migrations",)
    ).fetchone()[0]
    if not exists:
        return None
    return conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_migrations").format(
            sql.Identifier(schema)
        )
    ).fetchone()[0]


def setup(url: str, *, schema: str = DEFAULT_SCHEMA,
          password_source: PasswordSource | None = None) -> tuple[int, int]:  # fmt: skip
    """Create the group roles, the schema and its grants, and run pending migrations, all in
    one transaction under an advisory lock. Returns (version before, version after)."""
    conn, _ = connect_as(url, schema, None, password_source)
    with conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('refund-tui setup', 0))")
        for role in ROLES:
            conn.execute(
                sql.SQL("""DO $$ BEGIN CREATE ROLE {} NOLOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$""").format(sql.Identifier(role))
            )
        name = sql.Identifier(schema)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
        conn.execute(sql.SQL("SET LOCAL search_path = {}").format(name))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                applied_by text NOT NULL DEFAULT session_user)"""
        )
        before = schema_version(conn, schema) or 0
        if before > SCHEMA_VERSION:
            raise LedgerError(f"the team ledger's schema is at version {before}: this refund-tui "
                              f"({__version__}) knows up to {SCHEMA_VERSION}; upgrade it")  # fmt: skip
        for version, migration in enumerate(MIGRATIONS[before:], start=before + 1):
            for statement in migration:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        for grant in GRANTS:
            conn.execute(sql.SQL(grant).format(schema=name))
    return before, SCHEMA_VERSION


def set_rules(url: str, rules: ApprovalRules, *, schema: str = DEFAULT_SCHEMA,
              password_source: PasswordSource | None = None) -> bool:  # fmt: skip
    """Write the approval rules and daily limits into the ledger (the owner's, at setup); a
    change is a new row, so every version stays on record. True when they changed."""
    above, hours, daily = rules.as_stored()
    conn, _ = connect_as(url, schema, None, password_source)
    with conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('refund-tui setup', 0))")
        current = conn.execute(_RULES_NOW).fetchone()
        if current == (above, hours, daily) or (current is None and rules.empty):
            return False
        exponents = {currency: minor_units(currency) for currency in {*above, *daily}}
        try:
            conn.execute(
                """INSERT INTO approval_rules (above, expires_hours, daily_limit, exponents)
                VALUES (%s, %s, %s, %s)""",
                (json.dumps(above), hours, json.dumps(daily), json.dumps(exponents)),
            )
        except errors.InsufficientPrivilege as error:
            raise LedgerError(f"only the ledger's owner sets its rules: {error.diag.message_primary}") from None
    return True


def change_membership(url: str, login: str, role: str, *, grant: bool,
                      password_source: PasswordSource | None = None) -> None:  # fmt: skip
    """Grant (or revoke) one of the group roles to a login role."""
    if role not in ROLES:
        raise LedgerError(f"no refund-tui role '{role}' (roles: {', '.join(ROLES)})")
    statement = "GRANT {} TO {}" if grant else "REVOKE {} FROM {}"
    conn, _ = connect_as(url, DEFAULT_SCHEMA, None, password_source)
    with conn:
        try:
            conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Identifier(login)))
        except psycopg.Error as error:
            raise LedgerError(f"could not change {login}'s roles: {error.diag.message_primary}") from None
