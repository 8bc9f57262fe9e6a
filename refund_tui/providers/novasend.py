"""Novasend: wire models and async client (seed 002 and docs/wire-contract.md).

Novasend takes an idempotency key, so a refund of unknown outcome is resent as stored; it
is also found again on the payin by its ``externalReference``.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

from pydantic import AliasGenerator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from refund_tui.core.models import (
    Country,
    ErrorCode,
    Payment,
    ProviderError,
    ProviderName,
    Refund,
)
from refund_tui.core.secret import Secret
from refund_tui.providers.base import Notice, ProviderSettings, RefundDraft, RefundRequest
from refund_tui.providers.http import (
    NO_BALANCE,
    NOT_FOUND,
    OVER_BALANCE,
    KnownError,
    ProviderHttp,
    UtcDatetime,
    WireModel,
    bad_response,
    compact_json,
    e164,
    notice_status,
    parse_wire,
    payment_status,
    refund_on,
    refund_status,
    require_secrets,
    wire_money,
)

#: The seed's example window, used in messages when the profile sets none.
DEFAULT_REFUND_WINDOW = timedelta(days=7)

#: Novasend serves Côte d'Ivoire and Cameroon; it has no countries endpoint.
COUNTRIES = (
    Country(id="CI", name="Côte d'Ivoire", iso_code="CI", currency="XOF"),
    Country(id="CM", name="Cameroon", iso_code="CM", currency="XAF"),
)


def known_errors(window: timedelta) -> dict[str, KnownError]:
    """Novasend's documented error ``code`` values, with the profile's refund window."""
    return {
        "invalid_amount": KnownError(ErrorCode.AMOUNT_EXCEEDS_BALANCE, OVER_BALANCE),
        "payment_not_found": KnownError(ErrorCode.PAYMENT_NOT_FOUND, NOT_FOUND),
        "payment_not_refundable": KnownError(
            ErrorCode.REFUND_NOT_ALLOWED,
            "Novasend does not allow refunding this payment: it is not a successful payment",
        ),
        "refund_window_expired": KnownError(
            ErrorCode.REFUND_NOT_ALLOWED,
            f"Novasend no longer allows refunding this payment ({window.days}-day window over)",
        ),
        "insufficient_balance": KnownError(ErrorCode.INSUFFICIENT_FUNDS, NO_BALANCE),
        "duplicate_refund": KnownError(
            ErrorCode.DUPLICATE_REFUND,
            "Novasend already has a refund with this external reference on this payment",
        ),
        "request_in_progress": KnownError(
            ErrorCode.DUPLICATE_REFUND,
            "Novasend is still processing the first request with this idempotency key",
        ),
        "idempotency_key_reused": KnownError(
            ErrorCode.IDEMPOTENCY_KEY,
            "Novasend refused the request: its idempotency key was already used "
            "with a different request",
        ),
        "missing_idempotency_key": KnownError(
            ErrorCode.IDEMPOTENCY_KEY, "Novasend needs an idempotency key and none was sent"
        ),
    }


class NovasendModel(WireModel):
    """Novasend writes camelCase; errors name the wire field (``externalReference``)."""

    model_config = ConfigDict(alias_generator=AliasGenerator(validation_alias=to_camel))


class RefundTransaction(NovasendModel):
    processed_at: UtcDatetime | None = None


class RefundObject(NovasendModel):
    """A refund: the refund answer, ``GET /v1/payin/{rf_...}`` and each of ``refunds[]``."""

    type: str | None = None
    reference: str = Field(min_length=1)
    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)
    status: str
    reason: str | None = None
    created_at: UtcDatetime
    external_reference: str | None = None
    failure_reason: str | None = None
    transaction: RefundTransaction | None = None
    original_reference: str | None = None


class Customer(NovasendModel):
    name: str | None = None
    phone_number: str | None = None


class Payin(NovasendModel):
    """``GET /v1/payin/{tr_...}``: ``id`` is the reference refunds and paths use."""

    id: str = Field(min_length=1)
    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)
    status: str
    created_at: UtcDatetime
    customer: Customer | None = None
    refunds: list[RefundObject] | None = None


class Event(NovasendModel):
    """A webhook body: ``{"id": "evt_...", "type": "refund.completed", "data": {...}}``."""

    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    data: dict


class NovasendClient:
    """Async client for Novasend's payin API (HTTP Basic ``api_key:api_client``)."""

    name = ProviderName.NOVASEND
    idempotent = True
    sends_phone = False
    credential_names = ("api_key", "api_client")

    def __init__(self, settings: ProviderSettings, credentials: dict[str, Secret]) -> None:
        self.settings = settings
        self._api_key, self._api_client = require_secrets(
            credentials, self.credential_names, self.name
        )
        self._http = ProviderHttp(
            self.name,
            settings,
            error_key="code",
            known_errors=known_errors(settings.refund_window or DEFAULT_REFUND_WINDOW),
        )

    def __repr__(self) -> str:
        return f"NovasendClient(base_url={self.settings.base_url!r})"

    def _headers(self) -> dict[str, str]:
        pair = f"{self._api_key.reveal()}:{self._api_client.reveal()}".encode()
        return {
            "accept": "application/json",
            "accept-language": "en",
            "authorization": "Basic " + base64.b64encode(pair).decode("ascii"),
        }

    async def _get(self, reference: str) -> object:
        return await self._http.call(
            "GET",
            f"/v1/payin/{quote(reference, safe='')}",
            headers=self._headers(),
            reference=reference,
        )

    async def get_payment(self, reference: str) -> Payment:
        data = await self._get(reference)
        if _is_refund(data):
            raise ProviderError(
                ErrorCode.PAYMENT_NOT_FOUND,
                f"{reference} is a Novasend refund reference, not a payment reference",
                provider=self.name,
            )
        return self._payment(parse_wire(self.name, Payin, data))

    def build_refund(self, draft: RefundDraft) -> RefundRequest:
        body = {
            "amount": draft.amount.wire_number(),
            "reason": draft.reason,
            "externalReference": draft.external_reference,
        }
        return RefundRequest(
            provider=self.name,
            payment_reference=draft.payment.reference,
            method="POST",
            path=f"/v1/payin/{quote(draft.payment.reference, safe='')}/refund",
            body=compact_json(body),
            idempotency_key=draft.idempotency_key,
            external_reference=draft.external_reference,
            amount=draft.amount,
        )

    async def send_refund(self, request: RefundRequest) -> Refund:
        headers = {**self._headers(), "content-type": "application/json"}
        if request.idempotency_key:
            headers["x-idempotency-key"] = request.idempotency_key
        data = await self._http.call(
            request.method,
            request.path,
            headers=headers,
            body=request.body.encode("utf-8"),
            reference=request.payment_reference,
        )
        return self._refund(parse_wire(self.name, RefundObject, data), request.payment_reference)

    async def refund_status(self, payment_reference: str, refund_reference: str) -> Refund:
        """The refund object itself; the payin's ``refunds[]`` when that cannot be read."""
        try:
            data = await self._get(refund_reference)
        except ProviderError as error:
            if error.code is not ErrorCode.PAYMENT_NOT_FOUND:
                raise
        else:
            if _is_refund(data):
                return self._refund(parse_wire(self.name, RefundObject, data), payment_reference)
        return refund_on(await self.get_payment(payment_reference), refund_reference)

    def tagged_refunds(self, payment: Payment, request: RefundRequest) -> list[Refund]:
        """The refund carrying the request's ``externalReference`` (unique per payin)."""
        return [
            refund
            for refund in payment.refunds
            if refund.external_reference == request.external_reference
        ]

    async def countries(self) -> list[Country]:
        return list(COUNTRIES)

    @property
    def server_time(self) -> datetime | None:
        return self._http.server_time

    async def aclose(self) -> None:
        await self._http.aclose()

    def _refund(self, record: RefundObject, payment_reference: str) -> Refund:
        return Refund(
            reference=record.reference,
            payment_reference=payment_reference,
            amount=wire_money(self.name, record.amount, record.currency.upper()),
            status=refund_status(record.status),
            reason=record.reason or "",
            failure_reason=record.failure_reason,
            created_at=record.created_at,
            updated_at=record.transaction.processed_at if record.transaction else None,
            external_reference=record.external_reference,
        )

    def _payment(self, record: Payin) -> Payment:
        amount = wire_money(self.name, record.amount, record.currency.upper())
        refunds = tuple(self._refund(refund, record.id) for refund in record.refunds or ())
        if any(refund.amount.currency != amount.currency for refund in refunds):
            raise bad_response(
                self.name, f"Novasend lists refunds of payment {record.id} in another currency"
            )
        customer = record.customer or Customer()
        return Payment(
            reference=record.id,
            provider=self.name,
            amount=amount,
            status=payment_status(record.status),
            customer_name=(customer.name or "").strip(),
            customer_phone=e164(customer.phone_number),
            created_at=record.created_at,
            refunds=refunds,
        )


def parse_notice(payload: object) -> Notice:
    """A verified webhook body in neutral terms; ProviderError (BAD_RESPONSE) when malformed.

    Only ``refund.*`` events carry a refund object; any other event is read as a notice
    with no refund and no status, so it is acknowledged and kept, not refused.
    """
    event = parse_wire(ProviderName.NOVASEND, Event, payload, "notification")
    if not event.type.startswith("refund."):
        return Notice(ProviderName.NOVASEND, event.id, event.type, None, None, None, None, None)
    refund = parse_wire(ProviderName.NOVASEND, RefundObject, event.data, "notification")
    return Notice(
        provider=ProviderName.NOVASEND,
        identity=event.id,
        event=event.type,
        refund_reference=refund.reference,
        payment_reference=refund.original_reference,
        status=notice_status(event.type, refund.status),
        failure_reason=refund.failure_reason,
        tag=refund.external_reference,
    )


def _is_refund(data: object) -> bool:
    return isinstance(data, dict) and data.get("type") == "refund"
