"""Checks of what an operator types into a refund, each failure one precise message."""

from __future__ import annotations

from urllib.parse import urlsplit

from refund_tui.core.money import Money, MoneyError, parse_amount
from refund_tui.core.text import is_printable

REASON_MAX_LENGTH = 200

#: Reasons offered as quick picks in the console and accepted anywhere.
COMMON_REASONS = (
    "Customer cancellation",
    "Duplicate charge",
    "Order not delivered",
    "Service not rendered",
    "Overcharged",
)


class RefundInvalid(ValueError):
    """One or more fields are wrong; ``problems`` maps field name -> message."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems.items()))


def check_amount(text: str, remaining: Money) -> Money:
    """Parse the amount against the currency's decimals and the refundable balance."""
    if remaining.minor <= 0:
        raise MoneyError("nothing left to refund on this payment")
    return parse_amount(text, remaining.currency, maximum=remaining)


def amount_confirmed(typed: str, amount: Money) -> bool:
    """True when the operator typed back exactly this amount ("120", "120.00", "1,500")."""
    try:
        return parse_amount(typed, amount.currency) == amount
    except MoneyError:
        return False


def check_reason(text: str) -> str:
    """The reason with runs of spaces made one; refused when empty, too long, or holding a
    control character (escape sequence, line break, tab, bidi override), as the reason is
    shown on terminals and sent to the provider."""
    if not is_printable(text):
        raise ValueError("a reason cannot hold control characters (escape sequences, line breaks, tabs)")
    reason = " ".join(text.split())
    if not reason:
        raise ValueError("a reason is required")
    if len(reason) > REASON_MAX_LENGTH:
        raise ValueError(f"keep the reason under {REASON_MAX_LENGTH} characters")
    return reason


def check_webhook_url(text: str) -> str | None:
    """An optional HTTPS URL with a host; empty means none."""
    url = text.strip()
    if not url:
        return None
    if any(char.isspace() for char in url):
        raise ValueError("a URL cannot contain spaces")
    if not is_printable(url):
        raise ValueError("a URL cannot hold control characters")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError("the webhook URL must start with https://")
    if not parts.hostname or "." not in parts.hostname:
        raise ValueError("the webhook URL needs a public host name, e.g. https://example.com/hook")
    return url
