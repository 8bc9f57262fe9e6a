"""Provider-neutral payments, refunds, statuses and the one provider error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from refund_tui.core.money import Money


class ProviderName(StrEnum):
    VESICASH = "vesicash"
    NOVASEND = "novasend"


class RefundStatus(StrEnum):
    """The one refund status vocabulary seen above ``providers/``."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    REVERSED = "reversed"
    UNKNOWN = "unknown"
    #: Recorded (request and key included) but not sent: a second person must approve it.
    AWAITING_APPROVAL = "awaiting_approval"
    #: An approver refused it, or its requester withdrew it (or it lapsed): never sent.
    DENIED = "denied"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (
            RefundStatus.COMPLETED, RefundStatus.FAILED, RefundStatus.REVERSED,
            RefundStatus.DENIED, RefundStatus.CANCELLED,
        )  # fmt: skip

    @property
    def holds_balance(self) -> bool:
        """True when the refund counts against the payment's refundable balance."""
        return self not in (
            RefundStatus.FAILED, RefundStatus.REVERSED, RefundStatus.DENIED, RefundStatus.CANCELLED
        )  # fmt: skip

    @property
    def is_approval_stage(self) -> bool:
        """A status of the approval flow only (never one a provider reports)."""
        return self in (RefundStatus.AWAITING_APPROVAL, RefundStatus.DENIED, RefundStatus.CANCELLED)


class PaymentStatus(StrEnum):
    SUCCESSFUL = "successful"
    PENDING = "pending"
    FAILED = "failed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund as the provider reports it."""

    reference: str
    payment_reference: str
    amount: Money
    status: RefundStatus
    reason: str = ""
    failure_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    external_reference: str | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    """A customer payment (pay-in) as the provider reports it, with its refunds so far."""

    reference: str
    provider: ProviderName
    amount: Money
    status: PaymentStatus
    customer_name: str
    customer_phone: str
    created_at: datetime
    refunds: tuple[Refund, ...] = field(default=())

    @property
    def currency(self) -> str:
        return self.amount.currency

    def refunds_holding_balance(self) -> Money:
        """Sum of refunds that are completed, pending, processing or unknown."""
        total = Money.zero(self.currency)
        for refund in self.refunds:
            if refund.status.holds_balance:
                total = total + refund.amount
        return total


@dataclass(frozen=True, slots=True)
class Country:
    """A country a provider can refund to (Vesicash's ``GET /v1/countries``)."""

    id: str
    name: str
    iso_code: str
    currency: str


class ErrorCode(StrEnum):
    """Every way a provider call can fail, provider-neutral."""

    UNAUTHORIZED = "unauthorized"
    PAYMENT_NOT_FOUND = "payment_not_found"
    AMOUNT_EXCEEDS_BALANCE = "amount_exceeds_balance"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_PHONE = "invalid_phone"
    REFUND_NOT_ALLOWED = "refund_not_allowed"
    DUPLICATE_REFUND = "duplicate_refund"
    IDEMPOTENCY_KEY = "idempotency_key"
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    BAD_RESPONSE = "bad_response"

    @property
    def outcome_unknown(self) -> bool:
        """True when a refund request may or may not have been executed."""
        return self in (
            ErrorCode.SERVER_ERROR,
            ErrorCode.TIMEOUT,
            ErrorCode.CONNECTION,
            ErrorCode.BAD_RESPONSE,
        )


class ProviderError(Exception):
    """A provider call that did not succeed.

    ``message`` is for the operator; ``raw_code`` and ``raw_message`` are what the provider
    said, kept for the details view. Never carries a secret.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        provider: ProviderName,
        http_status: int | None = None,
        raw_code: str | None = None,
        raw_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.provider = provider
        self.http_status = http_status
        self.raw_code = raw_code
        self.raw_message = raw_message
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.code.value}, {self.message!r}, provider={self.provider.value}, "
            f"http_status={self.http_status}, raw_code={self.raw_code!r})"
        )
