"""Messages that cross screens, and the one way an error becomes operator text."""

from __future__ import annotations

from textual.message import Message

from refund_tui.core.text import printable


class RefundSubmitted(Message):
    """A refund attempt was recorded and sent (whatever the outcome); the app shows the board."""

    def __init__(self, attempt_id: str) -> None:
        super().__init__()
        self.attempt_id = attempt_id


class LedgerChanged(Message, bubble=False):
    """Sent by the app to the board after a refund: refresh now, and select ``attempt_id``."""

    def __init__(self, attempt_id: str | None = None) -> None:
        super().__init__()
        self.attempt_id = attempt_id


def describe_error(error: BaseException | None) -> str:
    """Operator-readable text for an exception raised under a worker.

    refund-tui's own exceptions already carry a sentence meant for the operator (and never a
    secret); anything else is named by its type so the operator can report it.
    """
    if error is None:
        return "unknown error"
    text = printable(str(error)).strip()
    if type(error).__module__.startswith("refund_tui.") and text:
        return text
    kind = type(error).__name__
    return f"unexpected {kind}: {text}" if text else f"unexpected {kind}"
