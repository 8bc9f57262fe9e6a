"""Novasend's pay-in refund API as the wire contract states it (mounted at ``/novasend``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refund_tui.core.models import PaymentStatus, ProviderName, RefundStatus
from refund_tui.sandbox.bodies import has_exact_fields, is_number, json_object
from refund_tui.sandbox.demo import NOVASEND_API_CLIENT, NOVASEND_API_KEY
from refund_tui.sandbox.gate import provider_call
from refund_tui.sandbox.store import WorldStore
from refund_tui.sandbox.world import (
    IdempotencyEntry,
    SandboxPayment,
    SandboxRefund,
    StoredAnswer,
    World,
    iso,
    token,
)

REFUND_WINDOW = timedelta(days=7)
#: How long past its latency an executing request's key stays claimed, should its process die.
CLAIM_GRACE_SECONDS = 30.0

PAYIN_STATUS_WORDS = {
    PaymentStatus.SUCCESSFUL: "success",
    PaymentStatus.PENDING: "processing",
    PaymentStatus.FAILED: "failed",
    PaymentStatus.EXPIRED: "expired",
}
PAYIN_FAILURES = {
    PaymentStatus.FAILED: {"code": "payment_failed", "message": "Customer did not approve the payment"},
    PaymentStatus.EXPIRED: {"code": "payment_expired", "message": "Payment was not confirmed in time"},
}
TRANSACTION_STATUS_WORDS = {
    RefundStatus.PENDING: "pending",
    RefundStatus.PROCESSING: "pending",
    RefundStatus.COMPLETED: "success",
    RefundStatus.FAILED: "failed",
    RefundStatus.REVERSED: "reversed",
}
IDEMPOTENCY_HEADER = "X-Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"

_REFUND_FIELDS = frozenset({"amount", "reason", "externalReference"})
_CREDENTIALS = f"{NOVASEND_API_KEY}:{NOVASEND_API_CLIENT}"


def new_refund_reference() -> str:
    return "rf_" + token(24)


def new_transaction_reference() -> str:
    return "tr_rf" + token(14)


def error(status_code: int, code: str, message: str) -> Response:
    body = {"code": code, "message": message, "statusCode": status_code}
    return JSONResponse(body, status_code=status_code)


def server_error() -> Response:
    return error(500, "internal_server_error", "Internal Server Error")


def _not_found() -> Response:
    return error(404, "payment_not_found", "Payment not found")


class NovasendApi:
    """The Novasend endpoints over one world store."""

    def __init__(self, store: WorldStore, settle_seconds: float) -> None:
        self._store = store
        self._unit = settle_seconds

    def routes(self) -> list[Route]:
        return [
            Route("/v1/payin/{reference}", self.lookup, methods=["GET"]),
            Route("/v1/payin/{reference}/refund", self.refund, methods=["POST"]),
        ]

    async def lookup(self, request: Request) -> Response:
        """A pay-in by its reference, or one refund by its ``rf_`` reference."""
        reference = request.path_params["reference"]

        def execute(world: World) -> Response:
            payin = world.payment(ProviderName.NOVASEND, reference)
            if payin is not None:
                return JSONResponse(self._payin_object(payin, world.now()))
            for payment, refund in world.refunds():
                if payment.provider is ProviderName.NOVASEND and refund.reference == reference:
                    return JSONResponse(refund_object(payment, refund, world.now(), self._unit))
            return _not_found()

        return await provider_call(
            self._store,
            server_error=server_error,
            prepare=lambda world: _refuse(request),
            execute=execute,
        )

    async def refund(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        raw = await request.body()
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        fingerprint = _fingerprint(reference, raw)

        def prepare(world: World) -> Response | None:
            return _refuse(request) or _claim(world, key, fingerprint)

        def execute(world: World) -> Response:
            answer = self._refund(world, reference, raw)
            stored = StoredAnswer(status_code=answer.status_code, body=bytes(answer.body).decode())
            world.idempotency[key] = IdempotencyEntry(fingerprint=fingerprint, answer=stored)
            return answer

        return await provider_call(
            self._store,
            server_error=server_error,
            prepare=prepare,
            execute=execute,
            droppable=True,
        )

    def _refund(self, world: World, reference: str, raw: bytes) -> Response:
        """The contract's checks from step 3 on, in its order, then the refund."""
        body = json_object(raw)
        if body is None or not _valid_refund_body(body):
            return error(400, "invalid_request", "Invalid request")
        payin = world.payment(ProviderName.NOVASEND, reference)
        if payin is None:
            return _not_found()
        if payin.status is not PaymentStatus.SUCCESSFUL:
            return error(403, "payment_not_refundable", "Refund not allowed")
        now = world.now()
        if now - payin.created_at > REFUND_WINDOW:
            return error(403, "refund_window_expired", "Refund not allowed")
        amount = payin.minor_amount(body["amount"])
        if amount is None or amount <= 0 or amount > payin.remaining(now, self._unit):
            return error(400, "invalid_amount", "Invalid amount")
        if any(r.external_reference == body["externalReference"] for r in payin.refunds):
            return error(409, "duplicate_refund", "Duplicate refund")
        if world.available_balance(payin, now, self._unit) < amount:
            return error(403, "insufficient_balance", "Refund not allowed")
        refund = SandboxRefund(
            reference=new_refund_reference(),
            amount=amount,
            reason=body["reason"],
            created_at=now,
            phone=payin.phone,
            external_reference=body["externalReference"],
            transaction_reference=new_transaction_reference(),
        )
        payin.refunds.append(refund)
        return JSONResponse(refund_object(payin, refund, now, self._unit))

    def _payin_object(self, payin: SandboxPayment, now: datetime) -> dict[str, Any]:
        amount = payin.money(payin.amount).wire_number()
        return {
            "id": payin.reference,
            "type": "payin",
            "reference": payin.reference,
            "status": PAYIN_STATUS_WORDS[payin.status],
            "amount": amount,
            "fee": 0,
            "chargedAmount": amount,
            "currency": payin.currency,
            "customer": {"name": payin.customer_name, "phoneNumber": payin.phone},
            "createdAt": iso(payin.created_at),
            "failure": PAYIN_FAILURES.get(payin.status),
            "refunds": [refund_object(payin, refund, now, self._unit) for refund in payin.refunds],
        }


def refund_object(
    payin: SandboxPayment, refund: SandboxRefund, now: datetime, unit_seconds: float
) -> dict[str, Any]:
    """The refund object (``GET /v1/payin/{rf_...}``) as it stands at ``now``."""
    state = refund.settlement(now, unit_seconds)
    processed_at = iso(state.settled_at) if state.settled_at else None
    return {
        "type": "refund",
        "reference": refund.reference,
        "originalReference": payin.reference,
        "amount": payin.money(refund.amount).wire_number(),
        "fee": 0,
        "currency": payin.currency,
        "status": state.status.value,
        "reason": refund.reason,
        "refundType": "full" if refund.amount == payin.amount else "partial",
        "customerMsisdn": refund.phone,
        "customerName": payin.customer_name,
        "createdAt": iso(refund.created_at),
        "externalReference": refund.external_reference,
        "failureReason": state.failure_reason,
        "transaction": {
            "reference": refund.transaction_reference,
            "status": TRANSACTION_STATUS_WORDS[state.status],
            "processedAt": processed_at,
        },
    }


def _refuse(request: Request) -> Response | None:
    """401 unless ``Authorization: Basic base64(api_key:api_client)`` carries the demo pair."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if scheme.lower() == "basic" and decoded == _CREDENTIALS:
        return None
    return error(401, "unauthorized", "Unauthorized")


def _claim(world: World, key: str, fingerprint: str) -> Response | None:
    """Steps 1-2: require a key; replay, refuse or claim it. None when the request may run."""
    if not key:
        return error(400, "missing_idempotency_key", "X-Idempotency-Key header is required")
    entry = world.idempotency.get(key)
    if entry is not None:
        if entry.fingerprint != fingerprint:
            return error(
                422, "idempotency_key_reused", "Idempotency key already used with a different request"
            )
        if entry.answer is not None:
            return Response(
                entry.answer.body,
                entry.answer.status_code,
                media_type="application/json",
                headers={REPLAY_HEADER: "true"},
            )
        if entry.claimed_until > time.time():
            return error(409, "request_in_progress", "Duplicate refund")
    # a pending hold applies to this request (the gate takes it once this claim is made)
    busy_ms = world.faults.latency_ms + world.faults.hold_refund_ms
    claimed_until = time.time() + busy_ms / 1000 + CLAIM_GRACE_SECONDS
    world.idempotency[key] = IdempotencyEntry(fingerprint=fingerprint, claimed_until=claimed_until)
    return None


def _fingerprint(reference: str, raw: bytes) -> str:
    """What makes two requests "the same": the pay-in and the body (JSON compared by value)."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    return hashlib.sha256(reference.encode() + b"\n" + canonical).hexdigest()


def _valid_refund_body(body: dict[str, Any]) -> bool:
    return (
        has_exact_fields(body, _REFUND_FIELDS)
        and is_number(body["amount"])
        and isinstance(body["reason"], str)
        and isinstance(body["externalReference"], str)
        and bool(body["externalReference"])
    )
