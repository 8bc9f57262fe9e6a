"""Vesicash's payments API as the wire contract states it (mounted at ``/vesicash``)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refund_tui.core.models import PaymentStatus, ProviderName, RefundStatus
from refund_tui.sandbox.bodies import has_exact_fields, is_number, json_object
from refund_tui.sandbox.demo import VESICASH_COUNTRIES, VESICASH_PUBLIC_KEY, VESICASH_SECRET_KEY
from refund_tui.sandbox.gate import provider_call
from refund_tui.sandbox.phones import is_wire_mobile
from refund_tui.sandbox.store import WorldStore
from refund_tui.sandbox.world import SandboxPayment, SandboxRefund, World, iso

PAYMENT_STATUS_WORDS = {
    PaymentStatus.SUCCESSFUL: "successful",
    PaymentStatus.PENDING: "pending",
    PaymentStatus.FAILED: "failed",
}
REFUND_STATUS_WORDS = {
    RefundStatus.PENDING: "pending",
    RefundStatus.PROCESSING: "processing",
    RefundStatus.COMPLETED: "successful",
    RefundStatus.FAILED: "failed",
    RefundStatus.REVERSED: "reversed",
}

UNAUTHORISED = "invalid or missing API keys"
INVALID_BODY = "invalid request body"
PAYMENT_NOT_FOUND = "payment not found"
AMOUNT_TOO_HIGH = "Refund amount exceeds the remaining refundable balance"
BAD_PHONE = "Refund Provider service returned an error"
BAD_COUNTRY = "invalid country_id"
INSUFFICIENT_FUNDS = "Insufficient funds or wallet error preventing refund processing"

_REFUND_FIELDS = frozenset(
    {"amount", "payment_reference", "country_id", "transfer_to", "momo_phone_number", "reason"}
)
_OPTIONAL_REFUND_FIELDS = frozenset({"webhook_url"})
_COUNTRY_IDS = frozenset(str(country.id) for country in VESICASH_COUNTRIES)


def new_refund_reference() -> str:
    return "VRF-" + secrets.token_hex(8)


def success(message: str, data: Any) -> Response:
    return JSONResponse({"status": "success", "code": 200, "message": message, "data": data})


def error(status_code: int, message: str) -> Response:
    body = {"status": "error", "code": status_code, "message": message, "data": None}
    return JSONResponse(body, status_code=status_code)


def server_error() -> Response:
    return error(500, "Internal Server Error")


class VesicashApi:
    """The Vesicash endpoints over one world store."""

    def __init__(self, store: WorldStore, settle_seconds: float) -> None:
        self._store = store
        self._unit = settle_seconds

    def routes(self) -> list[Route]:
        return [
            Route("/v1/countries", self.countries, methods=["GET"]),
            Route("/v1/payment/refunds/process", self.refund, methods=["POST"]),
            Route("/v1/payment/{reference}", self.payment, methods=["GET"]),
        ]

    async def countries(self, request: Request) -> Response:
        data = [
            {"id": c.id, "name": c.name, "country_code": c.country_code, "currency_code": c.currency_code}
            for c in VESICASH_COUNTRIES
        ]
        return await provider_call(
            self._store,
            server_error=server_error,
            prepare=lambda world: _refuse(request, need_secret=False),
            execute=lambda world: success("countries retrieved successfully", data),
        )

    async def payment(self, request: Request) -> Response:
        reference = request.path_params["reference"]

        def execute(world: World) -> Response:
            payment = world.payment(ProviderName.VESICASH, reference)
            if payment is None:
                return error(400, PAYMENT_NOT_FOUND)
            return success("payment retrieved successfully", self._payment_data(payment, world.now()))

        return await provider_call(
            self._store,
            server_error=server_error,
            prepare=lambda world: _refuse(request),
            execute=execute,
        )

    async def refund(self, request: Request) -> Response:
        raw = await request.body()
        return await provider_call(
            self._store,
            server_error=server_error,
            prepare=lambda world: _refuse(request),
            execute=lambda world: self._refund(world, raw),
            droppable=True,
        )

    def _refund(self, world: World, raw: bytes) -> Response:
        """The contract's checks, in its order, then the refund."""
        body = json_object(raw)
        if body is None or not _valid_refund_body(body):
            return error(400, INVALID_BODY)
        payment = world.payment(ProviderName.VESICASH, body["payment_reference"])
        if payment is None:
            return error(400, PAYMENT_NOT_FOUND)
        now = world.now()
        amount = payment.minor_amount(body["amount"])
        if amount is None or amount <= 0 or amount > payment.remaining(now, self._unit):
            return error(400, AMOUNT_TOO_HIGH)
        if not is_wire_mobile(body["momo_phone_number"]):
            return error(400, BAD_PHONE)
        if str(body["country_id"]) not in _COUNTRY_IDS:
            return error(400, BAD_COUNTRY)
        if world.available_balance(payment, now, self._unit) < amount:
            return error(400, INSUFFICIENT_FUNDS)
        refund = SandboxRefund(
            reference=new_refund_reference(),
            amount=amount,
            reason=body["reason"],
            created_at=now,
            phone="+" + body["momo_phone_number"],
            webhook_url=body.get("webhook_url") or None,
        )
        payment.refunds.append(refund)
        return success("refund queued successfully", {"status": "processing", "reference": refund.reference})

    def _payment_data(self, payment: SandboxPayment, now: datetime) -> dict[str, Any]:
        first, _, last = payment.customer_name.partition(" ")
        return {
            "id": payment.number,
            "amount": payment.money(payment.amount).wire_number(),
            "currency": payment.currency,
            "status": PAYMENT_STATUS_WORDS[payment.status],
            "method": "mobilemoney",
            "reference": payment.reference,
            "created_at": iso(payment.created_at),
            "customer_first_name": first,
            "customer_last_name": last,
            "email": f"{payment.customer_name.lower().replace(' ', '.')}@example.com",
            "phone_number": payment.phone.removeprefix("+"),
            "environment": "sandbox",
            "refunds": [refund_data(payment, refund, now, self._unit) for refund in payment.refunds],
        }


def refund_data(
    payment: SandboxPayment, refund: SandboxRefund, now: datetime, unit_seconds: float
) -> dict[str, Any]:
    """A refund as the payment record's ``refunds[]`` shows it at ``now``."""
    state = refund.settlement(now, unit_seconds)
    return {
        "reference": refund.reference,
        "status": REFUND_STATUS_WORDS[state.status],
        "amount": payment.money(refund.amount).wire_number(),
        "reason": refund.reason,
        "created_at": iso(refund.created_at),
        "completed_at": iso(state.settled_at) if state.settled_at else None,
        "failure_reason": state.failure_reason,
    }


def _refuse(request: Request, *, need_secret: bool = True) -> Response | None:
    """401 unless the request carries the demo keys (the secret key only where needed)."""
    public_ok = request.headers.get("public-key") == VESICASH_PUBLIC_KEY
    secret_ok = not need_secret or request.headers.get("secret-key") == VESICASH_SECRET_KEY
    return None if public_ok and secret_ok else error(401, UNAUTHORISED)


def _valid_refund_body(body: dict[str, Any]) -> bool:
    if not has_exact_fields(body, _REFUND_FIELDS, _OPTIONAL_REFUND_FIELDS):
        return False
    country_id = body["country_id"]
    return (
        is_number(body["amount"])
        and isinstance(body["payment_reference"], str)
        and (
            isinstance(country_id, str) or (isinstance(country_id, int) and not isinstance(country_id, bool))
        )
        and body["transfer_to"] == "mobile_number"
        and isinstance(body["momo_phone_number"], str)
        and isinstance(body["reason"], str)
        and isinstance(body.get("webhook_url"), str | None)
    )
