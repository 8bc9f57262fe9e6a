"""The refund state machine's rules, pure: every ledger adapter applies these and only these."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import timedelta

from refund_tui.core.ledger import NewAttempt
from refund_tui.core.models import RefundStatus
from refund_tui.core.money import Money

#: Statuses whose amount still counts against the payment's cap.
HOLDING = tuple(status for status in RefundStatus if status.holds_balance)


def may_follow(current: RefundStatus, new: RefundStatus) -> bool:
    """Whether a refund may move from ``current`` to ``new``. A refund awaiting approval
    becomes pending (approved), denied or cancelled, and only those leave or enter that stage."""
    if current is RefundStatus.AWAITING_APPROVAL:
        return new in (current, RefundStatus.PENDING, RefundStatus.DENIED, RefundStatus.CANCELLED)
    if new.is_approval_stage:
        return new is current
    if current.is_terminal:
        return new is current or (current, new) == (RefundStatus.COMPLETED, RefundStatus.REVERSED)
    return (current, new) != (RefundStatus.PROCESSING, RefundStatus.PENDING)


def tells_nothing_new(
    current: tuple[RefundStatus, str | None, str | None],
    status: RefundStatus,
    provider_reference: str | None,
    failure_reason: str | None,
    note: str | None,
) -> bool:
    """The same status, no reference or failure reason that differs from what the attempt
    (``current``: status, reference, failure reason) already has, and no note."""
    status_now, reference, failure = current
    return (
        status == status_now
        and provider_reference in (None, reference)
        and failure_reason in (None, failure)
        and note is None
    )


def reference_free(current: str | None, new: str | None, taken_elsewhere: bool) -> bool:
    """True unless ``new`` replaces the attempt's reference or belongs to another attempt."""
    if new is None or new == current:
        return True
    return current is None and not taken_elsewhere


def in_flight(held: Iterable[tuple[Money, str | None]], known: Collection[str], currency: str) -> Money:
    """The payment's refunds in flight (amount, provider reference) the provider does not
    report yet: those it reports are already in its own figures."""
    total = Money.zero(currency)
    for amount, reference in held:
        if reference is None or reference not in known:
            total = total + amount
    return total


def check_new(new: NewAttempt, limit: Money) -> None:
    """Refuse an attempt whose parts contradict each other (a programming error)."""
    if new.environment not in ("sandbox", "live"):
        raise ValueError(f"environment must be 'sandbox' or 'live', not {new.environment!r}")
    if (new.request.provider, new.request.payment_reference) != (
        new.provider,
        new.payment_reference,
    ):
        raise ValueError("the request is for a different provider or payment than the attempt")
    if new.request.amount != new.amount:
        raise ValueError("the request sends a different amount than the attempt records")
    if new.amount.minor <= 0:
        raise ValueError("a refund amount must be more than zero")
    if new.amount.currency != limit.currency:
        raise ValueError(f"limit in {limit.currency} for a refund in {new.amount.currency}")


def send_may_be_running(answered_4xx: bool, since_send: timedelta, lease: timedelta) -> bool:
    """Whether the last send may still be executing: no 4xx answer (a refusal ends a request;
    a 5xx from a gateway does not) and the lease not yet over."""
    return not answered_4xx and since_send < lease


def contradicts(recorded: RefundStatus, notified: RefundStatus) -> bool:
    """Two final outcomes that cannot both be true of one refund. A completion notified after
    its reversal is merely late; a failure of a completed refund, or a completion of a failed
    one, means one side is wrong about money."""
    if not (recorded.is_terminal and notified.is_terminal):
        return False
    return (recorded, notified) != (RefundStatus.REVERSED, RefundStatus.COMPLETED)
