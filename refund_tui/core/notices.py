"""The webhook inbox: each verified notification recorded once, then applied to its attempt.

A notice is matched to an attempt by the provider's refund reference, else by our own tag
the provider echoes back (a notice may beat the refund answer that tells us the reference).
It becomes a status change with source ``webhook`` under the ledger's usual guards, so a
late or out-of-order notice never moves a refund back from a final state. A notice no
attempt matches is kept and matched later (``reconcile``). Recording and applying happen in
one transaction, so a redelivered notice is recognised even when two receivers race.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from refund_tui.core.ledger import Ledger
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.providers.base import Notice


class NoticeOutcome(StrEnum):
    """What a notice did; the receiver answers it, ``refund-tui webhooks list`` shows it."""

    APPLIED = "applied"  # the attempt's state changed
    UNCHANGED = "unchanged"  # the attempt already knew
    STALE = "stale"  # late or out of order: it would move the refund backwards
    KEPT = "kept"  # no attempt matches (yet): kept for reconciliation
    IGNORED = "ignored"  # not about a refund's state
    CONFLICT = "conflict"  # contradicts the attempt's outcome or tag: the attempt is flagged
    DUPLICATE = "duplicate"  # received before: nothing done, nothing stored


@dataclass(frozen=True, slots=True)
class StoredNotice:
    notice: Notice
    received_at: datetime
    outcome: NoticeOutcome
    attempt_id: str | None


_COLUMNS = (
    "provider, identity, event, refund_reference, payment_reference, status, failure_reason, "
    "tag, received_at, outcome, attempt_id"
)


#: Kept notices an attempt now matches, by the provider's reference or by our tag.
_MATCHABLE = """SELECT {columns} FROM notices n WHERE outcome = 'kept' AND (
    EXISTS (SELECT 1 FROM current_state c JOIN attempts a ON a.seq = c.attempt_seq
            WHERE c.provider_reference = n.refund_reference AND a.provider = n.provider)
    OR EXISTS (SELECT 1 FROM attempts a WHERE a.provider = n.provider
               AND a.external_reference = n.tag))"""


def _stored(row: tuple) -> StoredNotice:
    provider, identity, event, reference, payment, status, failure, tag, *rest = row
    received_at, outcome, attempt_id = rest
    notice = Notice(
        ProviderName(provider), identity, event, reference, payment,
        RefundStatus(status) if status else None, failure, tag,
    )  # fmt: skip
    return StoredNotice(notice, datetime.fromisoformat(received_at), NoticeOutcome(outcome), attempt_id)


class NoticeInbox:
    """Notices in the ledger file of one profile."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def receive(self, notice: Notice, body: str) -> NoticeOutcome:
        """Record ``notice`` (its verified ``body`` kept verbatim) and apply it, at most once."""
        with self.ledger.transaction() as conn:
            seen = conn.execute(
                "SELECT 1 FROM notices WHERE provider = ? AND identity = ?",
                (notice.provider.value, notice.identity),
            ).fetchone()
            if seen:
                return NoticeOutcome.DUPLICATE
            attempt_id, outcome = self._apply(conn, notice)
            conn.execute(
                f"INSERT INTO notices ({_COLUMNS}, body) VALUES ({', '.join('?' * 12)})",
                (
                    notice.provider.value, notice.identity, notice.event, notice.refund_reference,
                    notice.payment_reference, notice.status.value if notice.status else None,
                    notice.failure_reason, notice.tag, datetime.now(UTC).isoformat(),
                    outcome.value, attempt_id, body,
                ),
            )  # fmt: skip
        return outcome

    def reconcile(self) -> int:
        """Apply kept notices that an attempt now matches, oldest first; how many were.

        Looks first without the write lock, which it takes only when there is work.
        """
        if not self.ledger.query(_MATCHABLE.format(columns="1") + " LIMIT 1"):
            return 0
        matched = 0
        with self.ledger.transaction() as conn:
            rows = conn.execute(_MATCHABLE.format(columns=f"id, {_COLUMNS}") + " ORDER BY id").fetchall()
            for notice_id, *columns in rows:
                attempt_id, outcome = self._apply(conn, _stored(tuple(columns)).notice)
                conn.execute(
                    "UPDATE notices SET outcome = ?, attempt_id = ? WHERE id = ?",
                    (outcome.value, attempt_id, notice_id),
                )
                matched += 1
        return matched

    def conflicts(self, attempt_id: str) -> list[StoredNotice]:
        """Notices that contradicted what the attempt records (it was flagged for them)."""
        rows = self.ledger.query(
            f"SELECT {_COLUMNS} FROM notices WHERE attempt_id = ? AND outcome = 'conflict' ORDER BY id",
            (attempt_id,),
        )
        return [_stored(row) for row in rows]

    def recent(self, *, kept_only: bool = False, limit: int = 50) -> list[StoredNotice]:
        """The newest notices first; ``kept_only``: those still waiting for an attempt."""
        where = "WHERE outcome = 'kept'" if kept_only else ""
        rows = self.ledger.query(f"SELECT {_COLUMNS} FROM notices {where} ORDER BY id DESC LIMIT ?", (limit,))
        return [_stored(row) for row in rows]

    def _apply(self, conn: sqlite3.Connection, notice: Notice) -> tuple[str | None, NoticeOutcome]:
        if notice.status is None:
            return None, NoticeOutcome.IGNORED
        attempt_id = _match(conn, notice)
        if attempt_id is None:
            return None, NoticeOutcome.KEPT
        status, reference, failure = self.ledger.current(conn, attempt_id)
        if reference is not None and reference != notice.refund_reference:
            return attempt_id, self._conflict(
                conn, attempt_id, notice, f"{notice.provider.value} notified refund "
                f"{notice.refund_reference}, which also carries this attempt's tag [{notice.tag}]: "
                "check for a double refund",
            )  # fmt: skip
        changed = self.ledger.append_status(
            conn, attempt_id, notice.status, "webhook",
            provider_reference=notice.refund_reference, failure_reason=notice.failure_reason,
        )  # fmt: skip
        if changed:
            return attempt_id, NoticeOutcome.APPLIED
        current = RefundStatus(status)
        if notice.status is current:
            return attempt_id, NoticeOutcome.UNCHANGED
        if _contradicts(current, notice.status):
            return attempt_id, self._conflict(
                conn, attempt_id, notice, f"{notice.provider.value} notified refund "
                f"{notice.refund_reference or '?'} {notice.status.value}, but it is recorded "
                f"{current.value}: check with the provider before any retry",
            )  # fmt: skip
        return attempt_id, NoticeOutcome.STALE

    def _conflict(
        self, conn: sqlite3.Connection, attempt_id: str, notice: Notice, note: str
    ) -> NoticeOutcome:
        """Flag the attempt for manual reconciliation; its recorded state stays as it is."""
        self.ledger.append_flag(conn, attempt_id, note)
        return NoticeOutcome.CONFLICT


def _contradicts(recorded: RefundStatus, notified: RefundStatus) -> bool:
    """Two final outcomes that cannot both be true of one refund. A completion notified after
    its reversal is merely late; a failure of a completed refund, or a completion of a failed
    one, means one side is wrong about money."""
    if not (recorded.is_terminal and notified.is_terminal):
        return False
    return (recorded, notified) != (RefundStatus.REVERSED, RefundStatus.COMPLETED)


def _match(conn: sqlite3.Connection, notice: Notice) -> str | None:
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
