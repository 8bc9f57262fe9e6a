"""How a refund status reads on screen: an ASCII marker, a word and a colour.

Colour only reinforces. The marker and the word read the same under NO_COLOR or on a
16-colour terminal over SSH, and statuses that need a human (failed, unknown, reversed) are
written in capitals so they stand out without any colour at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from rich.text import Text

from refund_tui.core.models import RefundStatus

if TYPE_CHECKING:  # the ledger stays off the first paint's path
    from refund_tui.core.ledger import Attempt


@dataclass(frozen=True, slots=True)
class StatusLook:
    marker: str
    word: str
    style: str

    @property
    def label(self) -> str:
        return f"{self.marker} {self.word}"


LOOKS: Mapping[RefundStatus, StatusLook] = MappingProxyType(
    {
        RefundStatus.PENDING: StatusLook("..", "pending", "yellow"),
        RefundStatus.PROCESSING: StatusLook("..", "processing", "yellow"),
        RefundStatus.COMPLETED: StatusLook("ok", "completed", "green"),
        RefundStatus.FAILED: StatusLook("!!", "FAILED", "bold red"),
        RefundStatus.UNKNOWN: StatusLook("??", "UNKNOWN", "bold magenta"),
        RefundStatus.REVERSED: StatusLook("<<", "REVERSED", "bold cyan"),
        RefundStatus.AWAITING_APPROVAL: StatusLook("=?", "awaiting approval", "bold blue"),
        RefundStatus.DENIED: StatusLook("xx", "denied", "dim"),
        RefundStatus.CANCELLED: StatusLook("xx", "cancelled", "dim"),
    }
)

#: Statuses an operator must act on; the board paints their whole row.
NEEDS_ATTENTION = frozenset({RefundStatus.FAILED, RefundStatus.UNKNOWN, RefundStatus.REVERSED})
#: Refunds whose outcome is still open.
IN_FLIGHT = frozenset({RefundStatus.PENDING, RefundStatus.PROCESSING, RefundStatus.UNKNOWN})
#: Shown after the status of an attempt flagged for manual reconciliation.
FLAG_MARK = "[manual]"
#: Shown instead when its provider executed the attempt's request twice.
DOUBLE_MARK = "[PAID TWICE]"
#: The status of a failed refund that was retried: handled, so it reads quietly.
RETRIED_LABEL = "!! retried"


def status_label(status: RefundStatus, *, flagged: bool = False, double: bool = False) -> str:
    """Plain words, e.g. ``"!! FAILED"``, ``"?? UNKNOWN [manual]"``."""
    label = LOOKS[status].label
    mark = DOUBLE_MARK if double else FLAG_MARK if flagged else None
    return f"{label} {mark}" if mark else label


def status_text(status: RefundStatus, *, flagged: bool = False, double: bool = False) -> Text:
    """The status as styled text (marker, word, colour)."""
    text = Text(status_label(status, flagged=flagged, double=double), style=LOOKS[status].style)
    if double:
        text.stylize("bold reverse", len(LOOKS[status].label) + 1)
    return text


def attempt_status(attempt: Attempt) -> Text:
    """An attempt's status with its flag or double-refund mark."""
    return status_text(attempt.status, flagged=attempt.flagged, double=bool(attempt.double_refunds))


def row_style(status: RefundStatus) -> str:
    """The style of every cell of a row in this status: loud when it needs a human."""
    return LOOKS[status].style if status in NEEDS_ATTENTION else ""


def counts_text(counts: Mapping[RefundStatus, int]) -> Text:
    """A one-line tally such as ``"!! 2 FAILED  ?? 1 UNKNOWN  .. 3 in progress  ok 40 completed"``.

    Failed, unknown, reversed and awaiting approval appear only when there are some, so a
    clean ledger reads calm.
    """
    in_progress = counts.get(RefundStatus.PENDING, 0) + counts.get(RefundStatus.PROCESSING, 0)
    parts: list[tuple[str, str]] = []
    for status in (RefundStatus.FAILED, RefundStatus.UNKNOWN, RefundStatus.REVERSED, RefundStatus.AWAITING_APPROVAL):
        if count := counts.get(status, 0):
            look = LOOKS[status]
            parts.append((f"{look.marker} {count:,} {look.word}", look.style))
    pending = LOOKS[RefundStatus.PENDING]
    completed = LOOKS[RefundStatus.COMPLETED]
    parts.append((f"{pending.marker} {in_progress:,} in progress", pending.style))
    parts.append(
        (f"{completed.marker} {counts.get(RefundStatus.COMPLETED, 0):,} completed", completed.style)
    )
    return Text("  ").join(Text(words, style=style) for words, style in parts)
