"""How a refund settles over simulator time, decided by the destination phone's last digits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from refund_tui.core.models import RefundStatus

#: Units a refund spends pending, then pending + processing, before its final status.
PENDING_UNITS = 1
FINAL_AFTER_UNITS = 3
REVERSAL_REASON = "Reversed by operator"


@dataclass(frozen=True, slots=True)
class Scenario:
    """The fate of every refund sent to a phone with a given ending."""

    final: RefundStatus
    failure_reason: str | None = None
    reversed_after_units: int | None = None


#: Magic phone endings (last four digits) and what they do; anything else completes.
MAGIC_ENDINGS: dict[str, Scenario] = {
    "9901": Scenario(RefundStatus.FAILED, "Recipient wallet not found"),
    "9902": Scenario(RefundStatus.FAILED, "Recipient wallet limit exceeded"),
    "9903": Scenario(RefundStatus.FAILED, "Mobile money operator timeout"),
    "9904": Scenario(RefundStatus.PROCESSING),
    "9905": Scenario(RefundStatus.COMPLETED, reversed_after_units=3),
}
_COMPLETES = Scenario(RefundStatus.COMPLETED)


@dataclass(frozen=True, slots=True)
class Settlement:
    """A refund's status at one instant; ``settled_at`` is when it reached a final status."""

    status: RefundStatus
    settled_at: datetime | None = None
    failure_reason: str | None = None


def scenario_for(phone: str) -> Scenario:
    return MAGIC_ENDINGS.get(phone[-4:], _COMPLETES)


def settle(created_at: datetime, phone: str, now: datetime, unit_seconds: float) -> Settlement:
    """Status of a refund created at ``created_at`` towards ``phone``, seen at ``now``."""
    unit = timedelta(seconds=unit_seconds)
    elapsed = now - created_at
    scenario = scenario_for(phone)
    if elapsed < PENDING_UNITS * unit:
        return Settlement(RefundStatus.PENDING)
    if elapsed < FINAL_AFTER_UNITS * unit or scenario.final is RefundStatus.PROCESSING:
        return Settlement(RefundStatus.PROCESSING)
    final_at = created_at + FINAL_AFTER_UNITS * unit
    if scenario.reversed_after_units is not None:
        reversed_at = final_at + scenario.reversed_after_units * unit
        if now >= reversed_at:
            return Settlement(RefundStatus.REVERSED, reversed_at, REVERSAL_REASON)
    return Settlement(scenario.final, final_at, scenario.failure_reason)
