"""The ledger in one SQLite file: the default for one operator on one machine.

Writes are ``BEGIN IMMEDIATE`` transactions, so the cap check and the intent of every
process on the host are serialised by SQLite's write lock, and fsync'd (``synchronous=FULL``)
before any byte goes to a provider. Attempts and events are never updated or deleted
(triggers refuse it); the current state of each attempt is derived from its events by a
trigger, so the board reads one indexed join. Every append-only row is linked into the hash
chain (``chain``) by this adapter, in the transaction that inserts it.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from refund_tui import __version__
from refund_tui.core.ledger import LedgerError, LedgerLost
from refund_tui.ledgers import chain
from refund_tui.ledgers.sql import SqlLedger, iso
from refund_tui.ledgers.sqlite_schema import MIGRATIONS, PRAGMAS, SCHEMA_VERSION

#: Seconds a write waits for another process's write before giving up.
BUSY_TIMEOUT = 5.0

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqliteChangeWatch:
    """Its own connection reads ``PRAGMA data_version``, which moves when another connection -
    another process (the webhook receiver), or this process's ledger - commits."""

    lost = None  # a local file: nothing to reconnect to

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


def _group_shared(folder: Path) -> bool:
    """A folder several accounts share through its group: setgid, group-writable."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat.S_ISGID and mode & stat.S_IWGRP)


class SqliteLedger(SqlLedger):
    """One ledger file. Safe to share between threads; several processes may open it.

    Private (0600 in a 0700 folder) unless its folder is group-shared (setgid, group-writable):
    then the file is 0660, and so are the WAL and shared-memory files SQLite makes after it
    (it gives them the database file's mode), so every account of the group can record.
    Every write checks, before and after its commit, that the file at ``path`` is still the
    one this ledger writes to; one deleted or replaced meanwhile raises LedgerLost.
    """

    _double_refunds_column = (
        "(SELECT group_concat(d.second_reference) FROM double_refunds d "
        "WHERE d.attempt_id = a.attempt_id)"
    )
    #: SQLite has no logins: the OS account that recorded the event is the role.
    _audit_recorded_by = "e.client_account"
    _triage_recorded_by = "e.operator_name"

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = Path(path)
        self.location = str(self.path)
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
            mode = 0o660 if _group_shared(self.path.parent) else 0o600
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode)
        except FileExistsError:
            pass
        except OSError as error:
            raise LedgerError(f"cannot open the ledger {self.path}: {error.strerror}") from None
        else:
            os.fchmod(descriptor, mode)  # whatever the umask took away
            os.close(descriptor)
        try:
            os.close(os.open(self.path, os.O_RDWR))
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
                        statement(conn) if callable(statement) else conn.execute(statement)
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

    def change_watch(self) -> SqliteChangeWatch:
        """A watch on this ledger file for changes committed by any other connection."""
        return SqliteChangeWatch(self.path)

    def __enter__(self) -> SqliteLedger:
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
        """One ``BEGIN IMMEDIATE`` transaction, committed on success, else rolled back."""
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

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self.transaction() as conn:
            return work(conn)

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock, self._translate():
            return self._conn.execute(sql, params).fetchall()

    def _intent_recorded(self) -> None:
        with self._lock, self._translate():  # into the main file: a lost -wal cannot lose it
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _now(self, conn: sqlite3.Connection) -> str:
        return iso(self.clock())

    def _link(self, conn: sqlite3.Connection, table: str, values: dict[str, Any]) -> dict[str, Any]:
        """The row with its key (when SQLite would number it) and its link in the chain,
        under this transaction's write lock."""
        spec = chain.CHAINED[table]
        if spec.numbered and spec.key not in values:
            (last,) = conn.execute(f"SELECT coalesce(max({spec.key}), 0) FROM {table}").fetchone()
            values = {spec.key: last + 1, **values}
        seq, prev = conn.execute("SELECT seq + 1, hash FROM chain_head").fetchone()
        digest = chain.link_hash(prev, table, chain.canonical(values.get(column) for column in spec.columns))
        conn.execute("UPDATE chain_head SET seq = ?, hash = ?", (seq, digest))
        return {**values, "chain_seq": seq, "prev_hash": prev, "row_hash": digest}

    def _snapshot(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock, self._translate():
            self._conn.execute("BEGIN")
            try:
                return work(self._conn)
            finally:
                self._conn.execute("COMMIT")

    def _links(self, conn: sqlite3.Connection, table: str) -> list[tuple]:
        spec = chain.CHAINED[table]
        rows = conn.execute(
            f"""SELECT {', '.join(chain.LINK_COLUMNS)}, CAST({spec.shown} AS TEXT), {', '.join(spec.columns)}
            FROM {table}"""
        ).fetchall()
        canonical = chain.canonical
        return [(seq, prev, digest, table, key, canonical(values)) for seq, prev, digest, key, *values in rows]
