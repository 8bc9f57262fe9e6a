"""How a refund settles over simulator time, decided by the destination phone's last digits."""

from __future__ import annotations

import functools
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


@dataclass(frozen=True, slots=True)
class Stage:
    """One status on a refund's way, entered ``after_units`` units after the refund was made."""

    status: RefundStatus
    after_units: int

    def starts(self, created_at: datetime, unit_seconds: float) -> datetime:
        return created_at + self.after_units * timedelta(seconds=unit_seconds)


def scenario_for(phone: str) -> Scenario:
    return MAGIC_ENDINGS.get(phone[-4:], _COMPLETES)


def stages(phone: str) -> tuple[Stage, ...]:
    """Every status a refund to ``phone`` goes through, in order; the last one is for good."""
    return _stages(phone[-4:])


def always_holds_balance(phone: str) -> bool:
    """True when a refund to ``phone`` holds the payment's balance at every stage of its way
    (it never fails nor is reversed): no need to work out where on its way it is."""
    return _always_holds(phone[-4:])


@functools.cache
def _always_holds(ending: str) -> bool:
    return all(stage.status.holds_balance for stage in _stages(ending))


@functools.cache
def _stages(ending: str) -> tuple[Stage, ...]:
    """The stages of a refund to a phone ending in ``ending`` (they depend on nothing else)."""
    scenario = scenario_for(ending)
    path = [Stage(RefundStatus.PENDING, 0), Stage(RefundStatus.PROCESSING, PENDING_UNITS)]
    if scenario.final is not RefundStatus.PROCESSING:
        path.append(Stage(scenario.final, FINAL_AFTER_UNITS))
    if scenario.reversed_after_units is not None:
        path.append(Stage(RefundStatus.REVERSED, FINAL_AFTER_UNITS + scenario.reversed_after_units))
    return tuple(path)


def settle(created_at: datetime, phone: str, now: datetime, unit_seconds: float) -> Settlement:
    """Status of a refund created at ``created_at`` towards ``phone``, seen at ``now``."""
    path = stages(phone)
    stage = next((s for s in reversed(path) if s.starts(created_at, unit_seconds) <= now), path[0])
    if not stage.status.is_terminal:
        return Settlement(stage.status)
    reversed_ = stage.status is RefundStatus.REVERSED
    reason = REVERSAL_REASON if reversed_ else scenario_for(phone).failure_reason
    return Settlement(stage.status, stage.starts(created_at, unit_seconds), reason)
