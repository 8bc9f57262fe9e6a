"""The webhook inbox: each verified notification recorded once, then applied to its attempt.

A notice is matched to an attempt by the provider's refund reference, else by our own tag
the provider echoes back (a notice may beat the refund answer that tells us the reference).
It becomes a status change with source ``webhook`` under the ledger's usual guards, so a
late or out-of-order notice never moves a refund back from a final state. A notice no
attempt matches is kept and matched later (``reconcile``). Recording and applying are one
ledger call (``Ledger.receive_notice``), so a redelivered notice is recognised even when two
receivers race.
"""

from __future__ import annotations

from refund_tui.core.ledger import Ledger, NoticeOutcome, StoredNotice
from refund_tui.core.provider import Notice

__all__ = ["NoticeInbox", "NoticeOutcome", "StoredNotice"]


class NoticeInbox:
    """The notices of one ledger, as the receiver and the console see them."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def receive(self, notice: Notice, body: str) -> NoticeOutcome:
        """Record ``notice`` (its verified ``body`` kept verbatim) and apply it, at most once."""
        return self.ledger.receive_notice(notice, body)

    def reconcile(self) -> int:
        """Apply kept notices that an attempt now matches, oldest first; how many were."""
        return self.ledger.reconcile_notices()

    def conflicts(self, attempt_id: str) -> list[StoredNotice]:
        """Notices that contradicted what the attempt records (it was flagged for them)."""
        return self.ledger.notice_conflicts(attempt_id)

    def recent(self, *, kept_only: bool = False, limit: int = 50) -> list[StoredNotice]:
        """The newest notices first; ``kept_only``: those still waiting for an attempt."""
        return self.ledger.recent_notices(kept_only=kept_only, limit=limit)
