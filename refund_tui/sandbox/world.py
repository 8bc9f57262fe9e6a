"""The simulated world: payments, their refunds, faults, idempotency keys, webhooks, the clock.

Amounts are integer minor units; times are aware UTC datetimes. The model is plain pydantic
so the whole world round-trips through one JSON document.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from refund_tui.core.models import PaymentStatus, ProviderName, RefundStatus
from refund_tui.core.money import Money, MoneyError
from refund_tui.sandbox.settlement import Settlement, always_holds_balance, settle

#: Every merchant wallet (one per provider and currency) starts with this, in major units.
WALLET_BALANCE_MAJOR = Decimal(10_000_000)
#: How many webhook delivery attempts ``GET /_sandbox/webhooks`` remembers.
DELIVERY_LOG_SIZE = 200


class SandboxRefund(BaseModel):
    """A refund the simulator accepted; its status is computed from the clock."""

    reference: str
    amount: int
    reason: str
    created_at: datetime
    #: Destination phone in ``+E.164``; its last four digits decide the outcome.
    phone: str
    external_reference: str | None = None
    transaction_reference: str | None = None
    #: Vesicash: the refund request's own ``webhook_url``.
    webhook_url: str | None = None
    #: The latest status the webhook dispatcher has dealt with (notified, or passed unsent).
    notified: RefundStatus = RefundStatus.PENDING
    #: A status set through ``POST /_sandbox/refunds/{reference}/amend``, from ``amended_at``
    #: on, instead of the one the clock and phone decide.
    amended_status: RefundStatus | None = None
    amended_reason: str | None = None
    amended_at: datetime | None = None

    def settlement(self, now: datetime, unit_seconds: float) -> Settlement:
        if self.amended_status is not None and self.amended_at is not None and now >= self.amended_at:
            final = self.amended_status.is_terminal
            return Settlement(self.amended_status, self.amended_at if final else None, self.amended_reason)
        return settle(self.created_at, self.phone, now, unit_seconds)

    def holds_balance(self, now: datetime, unit_seconds: float) -> bool:
        if self.amended_status is None and always_holds_balance(self.phone):
            return True  # the merchant wallet sums every refund: keep that cheap
        return self.settlement(now, unit_seconds).status.holds_balance


class SandboxPayment(BaseModel):
    """A customer payment (pay-in) with the refunds made against it."""

    provider: ProviderName
    reference: str
    number: int
    amount: int
    currency: str
    status: PaymentStatus
    customer_name: str
    phone: str
    created_at: datetime
    #: A merchant balance of its own (minor units) instead of the shared wallet: low-balance demos.
    merchant_balance: int | None = None
    refunds: list[SandboxRefund] = Field(default_factory=list)

    def money(self, minor: int) -> Money:
        return Money(minor, self.currency)

    def minor_amount(self, value: int | float) -> int | None:
        """Minor units of a wire amount (major units), or None when the currency can't hold it."""
        try:
            return Money.from_major(value, self.currency).minor
        except MoneyError:
            return None

    def refunded(self, now: datetime, unit_seconds: float) -> int:
        """Minor units held by refunds that are not failed or reversed."""
        held = 0
        for refund in self.refunds:
            if refund.holds_balance(now, unit_seconds):
                held += refund.amount
        return held

    def remaining(self, now: datetime, unit_seconds: float) -> int:
        """Refundable minor units left; nothing for a payment that did not succeed."""
        if self.status is not PaymentStatus.SUCCESSFUL:
            return 0
        return self.amount - self.refunded(now, unit_seconds)


class Faults(BaseModel):
    """Failures the tester asked for, consumed request by request."""

    latency_ms: int = 0
    fail_next: int = 0
    fail_refunds_next: int = 0
    drop_next: int = 0
    #: The next refund request is held this long before it executes (a slow provider).
    hold_refund_ms: int = 0

    def take_failure(self, refund: bool) -> bool:
        """Consume a pending 500: any request for ``fail_next``, refund POSTs for ``fail_refunds_next``."""
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        if refund and self.fail_refunds_next > 0:
            self.fail_refunds_next -= 1
            return True
        return False

    def take_hold(self) -> float:
        """Consume a pending hold: seconds the next refund request waits before executing."""
        seconds, self.hold_refund_ms = self.hold_refund_ms / 1000, 0
        return seconds

    def take_drop(self) -> bool:
        if self.drop_next <= 0:
            return False
        self.drop_next -= 1
        return True


class StoredAnswer(BaseModel):
    """The answer first given for an idempotency key, replayed byte for byte."""

    status_code: int
    body: str


class IdempotencyEntry(BaseModel):
    """An idempotency key: what it was used for, and its answer once executed."""

    fingerprint: str
    answer: StoredAnswer | None = None
    #: While executing: wall-clock time after which the claim counts as abandoned.
    claimed_until: float = 0.0


class VesicashSigning(BaseModel):
    """What Vesicash's webhook signature covers, and how its digest is written."""

    signed: Literal["body", "timestamp.body"] = "body"
    encoding: Literal["hex", "base64"] = "hex"


class WebhookConfig(BaseModel):
    """Where notifications go, how they are signed, and the delivery faults asked for."""

    vesicash_url: str | None = None
    novasend_url: str | None = None
    #: None: the demo secret.
    vesicash_secret: str | None = None
    novasend_secret: str | None = None
    vesicash_signing: VesicashSigning = Field(default_factory=VesicashSigning)
    duplicate_next: int = 0
    reorder_next: int = 0
    tamper_next: int = 0

    def take(self, fault: Literal["duplicate_next", "reorder_next", "tamper_next"]) -> bool:
        """Consume one of a pending delivery fault; False when none is pending."""
        if getattr(self, fault) <= 0:
            return False
        setattr(self, fault, getattr(self, fault) - 1)
        return True


class Notification(BaseModel):
    """A queued webhook: its exact body, the string it signs, and where its delivery stands."""

    event_id: str
    provider: ProviderName
    event: str
    refund_reference: str
    url: str
    body: str
    signed: str
    attempts: int = 0
    #: Simulator time of the next attempt.
    due: datetime
    #: While being sent: wall-clock time after which the claim counts as abandoned.
    claimed_until: float = 0.0
    #: Held back by ``reorder_next`` until its refund can change no more.
    held: bool = False
    tampered: bool = False


class DeliveryAttempt(BaseModel):
    """One POST of a notification, as ``GET /_sandbox/webhooks`` lists it."""

    event_id: str
    provider: ProviderName
    event: str
    refund_reference: str
    url: str
    attempt: int
    status_code: int | None
    error: str | None
    tampered: bool
    duplicate: bool
    at: str


class World(BaseModel):
    """Everything the simulator knows; one JSON document when persisted."""

    schema_version: Literal[1] = 1
    clock_offset_seconds: float = 0.0
    payments: dict[str, SandboxPayment] = Field(default_factory=dict)
    faults: Faults = Field(default_factory=Faults)
    idempotency: dict[str, IdempotencyEntry] = Field(default_factory=dict)
    next_number: int = 1001
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)
    outbox: list[Notification] = Field(default_factory=list)
    deliveries: list[DeliveryAttempt] = Field(default_factory=list)

    def now(self) -> datetime:
        """The simulator clock: real UTC time plus every ``POST /_sandbox/clock`` advance."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_seconds)

    def payment(self, provider: ProviderName, reference: str) -> SandboxPayment | None:
        payment = self.payments.get(reference)
        return payment if payment is not None and payment.provider is provider else None

    def add_payment(self, payment: SandboxPayment) -> SandboxPayment:
        self.payments[payment.reference] = payment
        self.next_number = max(self.next_number, payment.number + 1)
        return payment

    def take_number(self) -> int:
        number = self.next_number
        self.next_number += 1
        return number

    def available_balance(self, payment: SandboxPayment, now: datetime, unit_seconds: float) -> int:
        """Merchant funds (minor units) that can cover a refund of ``payment``."""
        if payment.merchant_balance is not None:
            return payment.merchant_balance - payment.refunded(now, unit_seconds)
        wallet = Money.from_major(WALLET_BALANCE_MAJOR, payment.currency).minor
        held = 0  # a plain loop: it runs over every refund of the wallet on each refund request
        for other in self.payments.values():
            if (other.refunds and other.merchant_balance is None and other.provider is payment.provider
                    and other.currency == payment.currency):  # fmt: skip
                held += other.refunded(now, unit_seconds)
        return wallet - held

    def log_delivery(self, attempt: DeliveryAttempt) -> None:
        """Remember a delivery attempt, forgetting the oldest beyond DELIVERY_LOG_SIZE."""
        self.deliveries.append(attempt)
        del self.deliveries[:-DELIVERY_LOG_SIZE]

    def refunds(self) -> list[tuple[SandboxPayment, SandboxRefund]]:
        """Every refund with its payment, oldest first."""
        pairs = [(p, r) for p in self.payments.values() for r in p.refunds]
        return sorted(pairs, key=lambda pair: pair[1].created_at)


def token(length: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
    """A random identifier part, as providers put in their references."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``: ``2025-08-23T12:34:48.189Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
