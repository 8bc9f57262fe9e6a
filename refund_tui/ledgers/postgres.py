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
from refund_tui.core.ledger import LedgerError, NoticeOutcome
from refund_tui.core.secret import Secret
from refund_tui.ledgers import chain
from refund_tui.ledgers.importing import ImportReport, merge, read_solo
from refund_tui.ledgers.postgres_schema import GRANTS, MIGRATIONS, ROLES, SCHEMA_VERSION
from refund_tui.ledgers.sql import Connection, Cursor, SqlLedger, iso

DEFAULT_SCHEMA = "refund_tui"
CONNECT_TIMEOUT = 5
#: Seconds a call waits for a pooled connection before the ledger counts as unreachable.
POOL_TIMEOUT = 10.0
#: Attempts at a transaction the database aborted to keep concurrent ones serialisable.
RETRIES = 8
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)

T = TypeVar("T")


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


def connect(url: str, schema: str = DEFAULT_SCHEMA, password: Secret | None = None,
            autocommit: bool = True) -> psycopg.Connection:  # fmt: skip
    """One connection, or LedgerError naming host, port and role (never the password)."""
    try:
        return psycopg.connect(url, autocommit=autocommit, **connection_options(schema, password))
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise LedgerError(f"cannot reach the team ledger ({where(url)}): {reason}") from None


class PostgresChangeWatch:
    """LISTENs on the schema's channel (every write NOTIFYs it at commit). A lost connection
    is re-opened in the background, and reported once as a change: missed notifications
    mean everything must be read again."""

    def __init__(self, open_connection: Callable[[], psycopg.Connection], channel: str) -> None:
        self._open = open_connection
        self._channel = channel
        self._conn: psycopg.Connection | None = None
        self._closed = False
        self._reconnected = False
        self._lock = threading.Lock()
        self._listen()

    def _listen(self) -> None:
        try:
            conn = self._open()
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except (LedgerError, psycopg.Error):
            return
        with self._lock:
            if self._closed:
                conn.close()
                return
            self._conn = conn

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
        except psycopg.Error:
            with self._lock:
                self._conn = None
            conn.close()
            threading.Thread(target=self._reconnect, name="ledger-watch", daemon=True).start()
            return False

    def _reconnect(self) -> None:
        while not self._closed and self._conn is None:
            self._listen()
            if self._conn is None:
                time.sleep(1.0)
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

    def __init__(
        self,
        url: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        password: Secret | None = None,
        pool_size: int = 4,
    ) -> None:
        self.url = url
        self.location = masked_url(url)
        self.schema = schema
        self._password = password
        with connect(url, schema, password) as first:
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
    def _translate(self) -> Iterator[None]:
        """Turn the database's refusals into LedgerError messages an operator can act on."""
        try:
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
                              f"{str(error).strip().splitlines()[-1]}") from None  # fmt: skip
        except psycopg.Error as error:
            raise LedgerError(f"the team ledger cannot be used: {error}") from None

    def _write(self, work: Callable[[Connection], T]) -> T:
        with self._translate():
            for tries in range(1, RETRIES + 1):
                try:
                    with self._pool.connection() as conn, conn.transaction():
                        return work(_Conn(conn))
                except _RETRYABLE:
                    if tries == RETRIES:
                        raise
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
        canonical = chain.canonical_sql(chain.pg_text(column, "t") for column in chain.hashed(table, postgres=True))
        return conn.execute(
            f"""SELECT {', '.join(chain.LINK_COLUMNS)}, '{table}', {chain.CHAINED[table].shown}::text,
            {canonical} FROM {table} t"""
        ).fetchall()

    def _since(self, since: datetime) -> datetime:
        iso(since)  # refuses a naive datetime
        return since


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


def setup(url: str, *, schema: str = DEFAULT_SCHEMA, password: Secret | None = None) -> tuple[int, int]:
    """Create the group roles, the schema and its grants, and run pending migrations, all in
    one transaction under an advisory lock. Returns (version before, version after)."""
    with connect(url, schema, password, autocommit=False) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('refund-tui setup', 0))")
        for role in ROLES:
            conn.execute(
                sql.SQL("""DO $$ BEGIN CREATE ROLE {} NOLOGIN;
                EXCEPTION WHEN duplicate_object THEN NULL; END $$""").format(sql.Identifier(role))
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


def change_membership(url: str, login: str, role: str, *, grant: bool,
                      password: Secret | None = None) -> None:  # fmt: skip
    """Grant (or revoke) one of the group roles to a login role."""
    if role not in ROLES:
        raise LedgerError(f"no refund-tui role '{role}' (roles: {', '.join(ROLES)})")
    statement = "GRANT {} TO {}" if grant else "REVOKE {} FROM {}"
    with connect(url, DEFAULT_SCHEMA, password) as conn:
        try:
            conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Identifier(login)))
        except psycopg.Error as error:
            raise LedgerError(f"could not change {login}'s roles: {error.diag.message_primary}") from None
