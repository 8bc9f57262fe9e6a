"""What every provider client offers the service, and the request it stores and resends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from refund_tui.core.models import Country, Payment, ProviderName, Refund, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.secret import Secret


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Per-profile connection settings for one provider."""

    base_url: str
    timeout_seconds: float = 30.0
    refund_window: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """One refund request exactly as it goes on the wire, minus credentials.

    Built once, written to the ledger before sending, and resent unchanged on retry.
    """

    provider: ProviderName
    payment_reference: str
    method: str
    path: str
    body: str
    idempotency_key: str | None
    external_reference: str
    amount: Money


@dataclass(frozen=True, slots=True)
class RefundDraft:
    """What the operator asked for, already validated by the service."""

    payment: Payment
    amount: Money
    reason: str
    phone_e164: str
    country_id: str | None
    webhook_url: str | None
    idempotency_key: str
    external_reference: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A provider's notification (webhook), verified and read into neutral terms.

    ``identity`` is what makes two deliveries the same notification; ``status`` is None for
    events that say nothing about a refund's state; ``tag`` is our own reference for the
    attempt as the provider echoes it (Novasend's ``externalReference``, the ``[...]`` at the
    end of a Vesicash reason), for a notice that arrives before the refund's reference is known.
    """

    provider: ProviderName
    identity: str
    event: str
    refund_reference: str | None
    payment_reference: str | None
    status: RefundStatus | None
    failure_reason: str | None
    tag: str | None


class Provider(Protocol):
    """An async client for one provider's refund API."""

    name: ProviderName
    #: True when the API takes an idempotency key, so an unknown attempt can be resent safely.
    idempotent: bool
    #: True when the refund body carries the destination phone number (Vesicash).
    sends_phone: bool
    settings: ProviderSettings

    @property
    def server_time(self) -> datetime | None:
        """The provider's clock as its last answer told it (None before any answer)."""
        ...

    async def get_payment(self, reference: str) -> Payment: ...

    def build_refund(self, draft: RefundDraft) -> RefundRequest: ...

    async def send_refund(self, request: RefundRequest) -> Refund: ...

    async def refund_status(self, payment_reference: str, refund_reference: str) -> Refund: ...

    def tagged_refunds(self, payment: Payment, request: RefundRequest) -> list[Refund]:
        """The refunds on the payment record that carry the request's own tag, oldest first:
        what that request created (more than one means it was executed twice)."""
        ...

    async def countries(self) -> list[Country]: ...

    async def aclose(self) -> None: ...


Credentials = dict[str, Secret]
