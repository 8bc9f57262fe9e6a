"""Vesicash: wire models and async client (seed 000 and docs/wire-contract.md).

Vesicash takes no idempotency key, so a refund of unknown outcome is found again on the
payment record by the tag at the end of its reason (``tagged_refunds``), never by time.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, TypeVar
from urllib.parse import quote

from pydantic import Field

from refund_tui.core.models import (
    Country,
    ErrorCode,
    Payment,
    ProviderError,
    ProviderName,
    Refund,
)
from refund_tui.core.phone import vesicash_wire
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

REFUND_PATH = "/v1/payment/refunds/process"
#: Our tag at the end of a refund's reason: ``Customer cancellation [rtui-...]``.
REASON_TAG = re.compile(r"\[([^\[\]]+)\]\s*$")

#: The seed's error messages (matched case-insensitively) plus the simulator's country check.
KNOWN_ERRORS = {
    "refund amount exceeds the remaining refundable balance": KnownError(
        ErrorCode.AMOUNT_EXCEEDS_BALANCE, OVER_BALANCE
    ),
    "payment not found": KnownError(ErrorCode.PAYMENT_NOT_FOUND, NOT_FOUND),
    "insufficient funds or wallet error preventing refund processing": KnownError(
        ErrorCode.INSUFFICIENT_FUNDS, f"{NO_BALANCE} (or Vesicash hit a wallet error)"
    ),
    "refund provider service returned an error": KnownError(
        ErrorCode.INVALID_PHONE, "The mobile money number was refused by the provider"
    ),
    "invalid country_id": KnownError(
        ErrorCode.REJECTED, "Vesicash does not know this country: reload the country list"
    ),
}

Data = TypeVar("Data")


class Envelope(WireModel, Generic[Data]):
    """``{"status","code","message","data"}``; only ``data`` is relied on."""

    data: Data


class RefundRecord(WireModel):
    """One entry of a payment's ``refunds[]``."""

    reference: str = Field(min_length=1)
    status: str
    amount: Decimal
    reason: str | None = None
    created_at: UtcDatetime
    completed_at: UtcDatetime | None = None
    failure_reason: str | None = None


class PaymentRecord(WireModel):
    """``GET /v1/payment/{reference}`` data."""

    reference: str = Field(min_length=1)
    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)
    status: str
    created_at: UtcDatetime
    customer_first_name: str | None = None
    customer_last_name: str | None = None
    phone_number: str | None = None
    refunds: list[RefundRecord] | None = None


class RefundAccepted(WireModel):
    """``POST /v1/payment/refunds/process`` data."""

    status: str
    reference: str = Field(min_length=1)


class NoticeData(RefundRecord):
    """A notification's ``data``: the refund as the payment record shows it, and its payment."""

    payment_reference: str | None = None


class RefundNotice(WireModel):
    """A webhook body: ``{"event": "refund.completed", "data": {...}}`` (docs/wire-contract.md)."""

    event: str = Field(min_length=1)
    data: NoticeData


class CountryRecord(WireModel):
    """One entry of ``GET /v1/countries``; ids are numbers in practice, strings accepted."""

    id: int | str
    name: str
    country_code: str
    currency_code: str


class VesicashClient:
    """Async client for Vesicash's payments API (headers ``public-key`` and ``secret-key``)."""

    name = ProviderName.VESICASH
    idempotent = False
    sends_phone = True
    credential_names = ("public_key", "secret_key")

    def __init__(self, settings: ProviderSettings, credentials: dict[str, Secret]) -> None:
        self.settings = settings
        self._public_key, self._secret_key = require_secrets(
            credentials, self.credential_names, self.name
        )
        self._http = ProviderHttp(
            self.name, settings, error_key="message", known_errors=KNOWN_ERRORS
        )

    def __repr__(self) -> str:
        return f"VesicashClient(base_url={self.settings.base_url!r})"

    def _headers(self, *, with_secret: bool = True) -> dict[str, str]:
        headers = {"accept": "application/json", "public-key": self._public_key.reveal()}
        if with_secret:
            headers["secret-key"] = self._secret_key.reveal()
        return headers

    async def get_payment(self, reference: str) -> Payment:
        data = await self._http.call(
            "GET",
            f"/v1/payment/{quote(reference, safe='')}",
            headers=self._headers(),
            reference=reference,
        )
        return self._payment(parse_wire(self.name, Envelope[PaymentRecord], data).data)

    def build_refund(self, draft: RefundDraft) -> RefundRequest:
        if not draft.country_id:
            raise ProviderError(
                ErrorCode.REJECTED,
                "Vesicash needs the country the refund is paid in",
                provider=self.name,
            )
        body: dict[str, object] = {
            "amount": draft.amount.wire_number(),
            "payment_reference": draft.payment.reference,
            "country_id": _country_id(draft.country_id),
            "transfer_to": "mobile_number",
            "momo_phone_number": vesicash_wire(draft.phone_e164),
        }
        if draft.webhook_url:
            body["webhook_url"] = draft.webhook_url
        body["reason"] = f"{draft.reason} [{draft.external_reference}]"
        return RefundRequest(
            provider=self.name,
            payment_reference=draft.payment.reference,
            method="POST",
            path=REFUND_PATH,
            body=compact_json(body),
            idempotency_key=None,
            external_reference=draft.external_reference,
            amount=draft.amount,
        )

    async def send_refund(self, request: RefundRequest) -> Refund:
        data = await self._http.call(
            request.method,
            request.path,
            headers={**self._headers(), "content-type": "application/json"},
            body=request.body.encode("utf-8"),
            reference=request.payment_reference,
        )
        accepted = parse_wire(self.name, Envelope[RefundAccepted], data).data
        return Refund(
            reference=accepted.reference,
            payment_reference=request.payment_reference,
            amount=request.amount,
            status=refund_status(accepted.status),
            reason=_reason(request),
        )

    async def refund_status(self, payment_reference: str, refund_reference: str) -> Refund:
        return refund_on(await self.get_payment(payment_reference), refund_reference)

    def tagged_refunds(self, payment: Payment, request: RefundRequest) -> list[Refund]:
        """Refunds whose reason ends with the request's tag (``[rtui-...]``), oldest first.

        Only the tag counts: no local clock decides whether money already moved.
        """
        tag = request.external_reference
        tagged = [
            refund
            for refund in payment.refunds
            if (found := REASON_TAG.search(refund.reason)) and found.group(1) == tag
        ]
        return sorted(tagged, key=_created)

    async def countries(self) -> list[Country]:
        data = await self._http.call(
            "GET", "/v1/countries", headers=self._headers(with_secret=False)
        )
        records = parse_wire(self.name, Envelope[list[CountryRecord]], data).data
        return [
            Country(
                id=str(record.id),
                name=record.name,
                iso_code=record.country_code,
                currency=record.currency_code,
            )
            for record in records
        ]

    @property
    def server_time(self) -> datetime | None:
        return self._http.server_time

    async def aclose(self) -> None:
        await self._http.aclose()

    def _payment(self, record: PaymentRecord) -> Payment:
        currency = record.currency.upper()
        refunds = tuple(
            Refund(
                reference=refund.reference,
                payment_reference=record.reference,
                amount=wire_money(self.name, refund.amount, currency),
                status=refund_status(refund.status),
                reason=refund.reason or "",
                failure_reason=refund.failure_reason,
                created_at=refund.created_at,
                updated_at=refund.completed_at,
            )
            for refund in record.refunds or ()
        )
        names = (record.customer_first_name, record.customer_last_name)
        return Payment(
            reference=record.reference,
            provider=self.name,
            amount=wire_money(self.name, record.amount, currency),
            status=payment_status(record.status),
            customer_name=" ".join(name.strip() for name in names if name and name.strip()),
            customer_phone=e164(record.phone_number),
            created_at=record.created_at,
            refunds=refunds,
        )


def parse_notice(payload: object) -> Notice:
    """A verified webhook body in neutral terms; ProviderError (BAD_RESPONSE) when malformed.

    Vesicash sends no event id: ``event`` + refund reference identify a notification (it
    notifies each outcome of a refund once, retries aside).
    """
    notice = parse_wire(ProviderName.VESICASH, RefundNotice, payload, "notification")
    data = notice.data
    tag = REASON_TAG.search(data.reason or "")
    return Notice(
        provider=ProviderName.VESICASH,
        identity=f"{notice.event}:{data.reference}",
        event=notice.event,
        refund_reference=data.reference,
        payment_reference=data.payment_reference,
        status=notice_status(notice.event, data.status),
        failure_reason=data.failure_reason,
        tag=tag.group(1) if tag else None,
    )


def _created(refund: Refund) -> datetime:
    return refund.created_at or datetime.max.replace(tzinfo=UTC)


def _country_id(value: str) -> int | str:
    """Vesicash country ids are numbers: send one as a JSON number when it is all digits."""
    return int(value) if value.isascii() and value.isdigit() else value


def _reason(request: RefundRequest) -> str:
    """The reason as sent in a refund body this client built."""
    return json.loads(request.body)["reason"]
