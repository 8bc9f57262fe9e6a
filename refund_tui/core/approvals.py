"""Four eyes on large refunds: the rules a team ledger enforces, and the decisions on them.

The rules live in the team ledger (written by its owner's ``refund-tui ledger setup``), so a
client whose own config has none still gets them, and PostgreSQL itself refuses what breaks
them (``ledgers/postgres_schema``): a refund above ``above[currency]`` is recorded as
awaiting approval and sent only after another role holding ``refund_tui_approver`` approved
it, within ``expires_hours``; one role's refunds of a UTC day, in one currency, never sum
above ``daily_limit[currency]`` (failed, denied and cancelled ones do not count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from refund_tui.core.money import Money

DEFAULT_EXPIRES_HOURS = 24


class Decision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ApprovalRules:
    """Thresholds and daily limits by currency; empty when the ledger has none."""

    above: Mapping[str, Money] = field(default_factory=dict)
    expires_hours: int = DEFAULT_EXPIRES_HOURS
    daily_limit: Mapping[str, Money] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rules in (self.above, self.daily_limit):
            for currency, amount in rules.items():
                if amount.currency != currency or amount.minor < 0:
                    raise ValueError(f"{currency}: {amount} is not an amount of {currency}")
        if self.expires_hours < 1:
            raise ValueError("expires_hours must be at least 1")

    @property
    def empty(self) -> bool:
        return not self.above and not self.daily_limit

    def lapses_at(self, requested_at: datetime) -> datetime:
        return requested_at + timedelta(hours=self.expires_hours)

    def as_stored(self) -> tuple[dict[str, int], int, dict[str, int]]:
        """(above, expires_hours, daily_limit) in minor units, as the ledger stores them."""
        return (
            {currency: amount.minor for currency, amount in sorted(self.above.items())},
            self.expires_hours,
            {currency: amount.minor for currency, amount in sorted(self.daily_limit.items())},
        )

    @classmethod
    def from_stored(cls, above: Mapping[str, int], expires_hours: int, daily_limit: Mapping[str, int]) -> ApprovalRules:
        return cls(
            {currency: Money(minor, currency) for currency, minor in above.items()},
            expires_hours,
            {currency: Money(minor, currency) for currency, minor in daily_limit.items()},
        )

    def lines(self) -> list[str]:
        """The rules in words, one a line."""
        if self.empty:
            return ["no approval rules and no daily limits: every refund is sent at once"]
        lines = [f"approval needed above {amount.format()}" for amount in self.above.values()]
        if self.above:
            lines.append(f"approval needed for every refund in another currency than {', '.join(self.above)}")
            lines.append(f"an approval request lapses after {self.expires_hours} h")
        lines += [f"daily limit per operator role: {amount.format()}" for amount in self.daily_limit.values()]
        return lines
