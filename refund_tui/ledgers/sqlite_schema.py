"""The ledger's SQL: connection pragmas and the migrations that build its schema.

``MIGRATIONS[n]`` takes a ledger from schema version ``n`` to ``n + 1`` (kept in
``PRAGMA user_version``). Migrations are only ever appended, never edited. A step is an SQL
statement, or a function of the connection for what SQL alone cannot do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from refund_tui.ledgers import chain
from refund_tui.ledgers.audit import client_columns

#: Applied on every connection (journal_mode first); WAL is persistent, the others are not.
#: The busy timeout is set by the ledger from its ``busy_timeout`` argument.
PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)

#: The statuses the first schema knew, frozen (a migration never changes once released).
_STATUSES = "'pending', 'processing', 'completed', 'failed', 'reversed', 'unknown'"


def _append_only(table: str) -> tuple[str, ...]:
    return tuple(
        f"""CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} are append-only: {action} refused'); END"""
        for action in ("UPDATE", "DELETE")
    )


_V1 = (
    """CREATE TABLE attempts (
        seq INTEGER PRIMARY KEY,
        attempt_id TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        profile TEXT NOT NULL,
        environment TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
        provider TEXT NOT NULL,
        payment_reference TEXT NOT NULL,
        amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
        currency TEXT NOT NULL,
        phone TEXT NOT NULL,
        country_id TEXT,
        reason TEXT NOT NULL,
        webhook_url TEXT,
        idempotency_key TEXT,
        external_reference TEXT NOT NULL,
        request_method TEXT NOT NULL,
        request_path TEXT NOT NULL,
        request_body TEXT NOT NULL,
        operator_name TEXT NOT NULL,
        operator_uid INTEGER NOT NULL,
        hostname TEXT NOT NULL,
        ssh_client TEXT,
        pid INTEGER NOT NULL,
        app_version TEXT NOT NULL,
        retry_of TEXT REFERENCES attempts (attempt_id)
    ) STRICT""",
    "CREATE INDEX attempts_payment ON attempts (provider, payment_reference)",
    "CREATE INDEX attempts_created ON attempts (created_at)",
    """CREATE UNIQUE INDEX attempts_idempotency_key ON attempts (provider, idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
    f"""CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        attempt_id TEXT NOT NULL REFERENCES attempts (attempt_id),
        at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({_STATUSES})),
        source TEXT NOT NULL,
        provider_reference TEXT,
        failure_reason TEXT,
        raw_code TEXT,
        raw_message TEXT,
        http_status INTEGER,
        note TEXT
    ) STRICT""",
    "CREATE INDEX events_attempt ON events (attempt_id, id)",
    # Derived from events by the trigger below: one row per attempt, its latest state.
    """CREATE TABLE current_state (
        attempt_seq INTEGER PRIMARY KEY REFERENCES attempts (seq),
        status TEXT NOT NULL,
        provider_reference TEXT,
        failure_reason TEXT,
        raw_code TEXT,
        raw_message TEXT,
        updated_at TEXT NOT NULL,
        flagged INTEGER NOT NULL DEFAULT 0
    ) STRICT""",
    "CREATE INDEX current_state_status ON current_state (status, attempt_seq)",
    "CREATE INDEX current_state_reference ON current_state (provider_reference)",
    """CREATE TRIGGER events_to_current_state AFTER INSERT ON events
    BEGIN
        INSERT INTO current_state (attempt_seq, status, provider_reference, failure_reason,
                                   raw_code, raw_message, updated_at, flagged)
        VALUES ((SELECT seq FROM attempts WHERE attempt_id = NEW.attempt_id), NEW.status,
                NEW.provider_reference, NEW.failure_reason, NEW.raw_code, NEW.raw_message,
                NEW.at, NEW.source = 'flag')
        ON CONFLICT (attempt_seq) DO UPDATE SET
            status = excluded.status,
            provider_reference = coalesce(excluded.provider_reference,
                                          current_state.provider_reference),
            failure_reason = excluded.failure_reason,
            raw_code = excluded.raw_code,
            raw_message = excluded.raw_message,
            updated_at = excluded.updated_at,
            flagged = max(current_state.flagged, excluded.flagged);
    END""",
    *_append_only("attempts"),
    *_append_only("events"),
)

#: A failed refund is retried at most once: a second retry must build on the newest failure.
_V2 = (
    """CREATE UNIQUE INDEX attempts_one_retry ON attempts (retry_of)
    WHERE retry_of IS NOT NULL""",
)

#: Provider notifications (webhooks) as received, each once: the inbox of ``core/notices.py``.
#: A notice is never deleted; only a kept one (no attempt matched yet) may later be matched.
_V3 = (
    """CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        provider TEXT NOT NULL,
        identity TEXT NOT NULL,
        event TEXT NOT NULL,
        refund_reference TEXT,
        payment_reference TEXT,
        tag TEXT,
        status TEXT,
        failure_reason TEXT,
        outcome TEXT NOT NULL
            CHECK (outcome IN ('applied', 'unchanged', 'stale', 'kept', 'ignored', 'conflict')),
        attempt_id TEXT REFERENCES attempts (attempt_id),
        body TEXT NOT NULL,
        UNIQUE (provider, identity)
    ) STRICT""",
    "CREATE INDEX notices_kept ON notices (id) WHERE outcome = 'kept'",
    "CREATE INDEX notices_attempt ON notices (attempt_id) WHERE attempt_id IS NOT NULL",
    "CREATE INDEX attempts_external_reference ON attempts (provider, external_reference)",
    """CREATE TRIGGER notices_no_delete BEFORE DELETE ON notices
    BEGIN SELECT RAISE(ABORT, 'notices are kept: DELETE refused'); END""",
    """CREATE TRIGGER notices_match_only BEFORE UPDATE ON notices
    WHEN OLD.outcome != 'kept' OR NEW.id != OLD.id OR NEW.received_at != OLD.received_at
        OR NEW.identity != OLD.identity OR NEW.body != OLD.body
    BEGIN SELECT RAISE(ABORT, 'only a kept notice may be matched later: UPDATE refused'); END""",
)

#: The ledger's own identity (so a replaced file is noticed) and the second executions of an
#: attempt's request found on a provider's record (double refunds), each recorded once.
_V4 = (
    """CREATE TABLE ledger_identity (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        ledger_id TEXT NOT NULL
    ) STRICT""",
    "INSERT INTO ledger_identity VALUES (1, lower(hex(randomblob(16))))",
    *_append_only("ledger_identity"),
    """CREATE TABLE double_refunds (
        id INTEGER PRIMARY KEY,
        attempt_id TEXT NOT NULL REFERENCES attempts (attempt_id),
        found_at TEXT NOT NULL,
        provider_reference TEXT NOT NULL,
        second_reference TEXT NOT NULL,
        UNIQUE (attempt_id, second_reference)
    ) STRICT""",
    *_append_only("double_refunds"),
)

#: Which attempt each row of a batch file became, written with the attempt's intent: a row
#: (batch: the hash of the file's rows) is recorded at most once, however often it is run;
#: and the reconciliation findings operators acknowledged, with their notes.
_V5 = (
    """CREATE TABLE batch_rows (
        batch_id TEXT NOT NULL,
        row INTEGER NOT NULL CHECK (row > 0),
        attempt_id TEXT NOT NULL UNIQUE REFERENCES attempts (attempt_id),
        PRIMARY KEY (batch_id, row)
    ) STRICT""",
    *_append_only("batch_rows"),
    # A reconciliation finding an operator looked into, with what they found (newest wins).
    """CREATE TABLE finding_acks (
        id INTEGER PRIMARY KEY,
        finding_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        provider TEXT NOT NULL,
        payment_reference TEXT NOT NULL,
        note TEXT NOT NULL CHECK (length(note) > 0),
        acked_at TEXT NOT NULL,
        operator_name TEXT NOT NULL,
        hostname TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX finding_acks_finding ON finding_acks (finding_id, id)",
    *_append_only("finding_acks"),
)

#: Triage: claims ("I'm on it"), their release or take-over, and notes on attempts, kept for
#: good; the claim in force is the newest claim or release of the attempt.
_V6 = (
    """CREATE TABLE triage (
        id INTEGER PRIMARY KEY,
        attempt_id TEXT NOT NULL REFERENCES attempts (attempt_id),
        at TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('claim', 'release', 'note')),
        note TEXT CHECK (action != 'note' OR coalesce(length(trim(note)), 0) > 0),
        took_over TEXT,
        operator_name TEXT NOT NULL,
        operator_uid INTEGER NOT NULL,
        hostname TEXT NOT NULL,
        ssh_client TEXT
    ) STRICT""",
    "CREATE INDEX triage_attempt ON triage (attempt_id, id)",
    "CREATE INDEX attempts_operator ON attempts (operator_name, seq)",  # mine, by:NAME
    *_append_only("triage"),
)


#: The tables chained by _V7, in the order their rows already there are linked.
_V7_CHAINED = (
    "attempts", "events", "notices", "double_refunds", "batch_rows", "finding_acks", "triage",
)


def _chain_existing_rows(conn: sqlite3.Connection) -> None:
    """Link the rows already in the ledger, table by table, each by its key: their update
    triggers (append-only) are set aside for this, inside the migration's transaction."""
    seq, prev = conn.execute("SELECT seq, hash FROM chain_head").fetchone()
    for table in _V7_CHAINED:
        spec = chain.CHAINED[table]
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ? "
            "AND sql LIKE '%BEFORE UPDATE%'",
            (table,),
        ).fetchall()
        for name, _ in triggers:
            conn.execute(f"DROP TRIGGER {name}")
        rows = conn.execute(f"SELECT {spec.key}, {', '.join(spec.columns)} FROM {table} ORDER BY {spec.key}")
        for key, *values in rows.fetchall():
            digest, seq = chain.link_hash(prev, table, chain.canonical(values)), seq + 1
            conn.execute(
                f"UPDATE {table} SET chain_seq = ?, prev_hash = ?, row_hash = ? WHERE {spec.key} = ?",
                (seq, prev, digest, key),
            )
            prev = digest
        for _, statement in triggers:
            conn.execute(statement)
    conn.execute("UPDATE chain_head SET seq = ?, hash = ?", (seq, prev))


#: The tamper-evident trail (``chain``): every append-only row gets its link; the chain's
#: newest link; who recorded each event and from where (``audit``), and a decision's outcome.
_V7: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    """CREATE TABLE chain_head (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    ) STRICT""",
    f"INSERT INTO chain_head VALUES (1, 0, '{chain.GENESIS}')",
    "ALTER TABLE events ADD COLUMN outcome TEXT",
    *client_columns("events"),
    *(
        f"ALTER TABLE {table} ADD COLUMN {column} {kind}"
        for table in _V7_CHAINED
        for column, kind in zip(chain.LINK_COLUMNS, ("INTEGER", "TEXT", "TEXT"), strict=True)
    ),
    _chain_existing_rows,
    *(f"CREATE UNIQUE INDEX {table}_chain ON {table} (chain_seq)" for table in _V7_CHAINED),
)

MIGRATIONS: tuple[tuple[str | Callable[[sqlite3.Connection], None], ...], ...] = (
    _V1, _V2, _V3, _V4, _V5, _V6, _V7,
)

SCHEMA_VERSION = len(MIGRATIONS)
