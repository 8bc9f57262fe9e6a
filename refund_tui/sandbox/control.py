"""Control endpoints under ``/_sandbox/`` (no auth): seed payments, faults, clock, reset.

Webhook settings are next door, in ``control_webhooks``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refund_tui.core.models import PaymentStatus, ProviderName, RefundStatus
from refund_tui.core.money import MAX_MAJOR_UNITS, Money, MoneyError
from refund_tui.sandbox import novasend, vesicash
from refund_tui.sandbox.bodies import is_number, json_object
from refund_tui.sandbox.demo import (
    CURRENCIES,
    NOVASEND_API_CLIENT,
    NOVASEND_API_KEY,
    VESICASH_PUBLIC_KEY,
    VESICASH_SECRET_KEY,
)
from refund_tui.sandbox.phones import parse_mobile
from refund_tui.sandbox.signing import webhook_secret
from refund_tui.sandbox.store import WorldStore
from refund_tui.sandbox.world import SandboxPayment, SandboxRefund, World, iso, token

#: Payment status words accepted per provider: the neutral word or the provider's own.
_STATUS_WORDS: dict[ProviderName, dict[str, PaymentStatus]] = {
    provider: {s.value: s for s in words} | {word: s for s, word in words.items()}
    for provider, words in (
        (ProviderName.VESICASH, vesicash.PAYMENT_STATUS_WORDS),
        (ProviderName.NOVASEND, novasend.PAYIN_STATUS_WORDS),
    )
}
_PAYMENT_FIELDS = frozenset(
    {"provider", "amount", "currency", "phone", "status", "age_days", "customer_name", "merchant_balance"}
)
_FAULT_FIELDS = frozenset(
    {"latency_ms", "fail_next", "fail_refunds_next", "drop_next", "hold_refund_ms"}
)
_CLOCK_FIELDS = frozenset({"advance_seconds"})
_AMEND_FIELDS = frozenset({"status", "failure_reason", "amount"})
_AMENDABLE = tuple(
    status for status in RefundStatus if status is not RefundStatus.UNKNOWN and not status.is_approval_stage
)
_MAX_AGE_DAYS = 3650
#: How far the clock may run ahead of real time (keeps every date representable).
_MAX_CLOCK_OFFSET = timedelta(days=100 * 365)


class ControlError(Exception):
    """A control request that cannot be honoured; the message says why."""


class ControlApi:
    """The tester's levers over one world store."""

    def __init__(self, store: WorldStore, settle_seconds: float) -> None:
        self._store = store
        self._unit = settle_seconds

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/payments", self.create_payment, methods=["POST"]),
            Route("/refunds", self.refunds, methods=["GET"]),
            Route("/refunds/{reference}/duplicate", self.duplicate_refund, methods=["POST"]),
            Route("/refunds/{reference}/amend", self.amend_refund, methods=["POST"]),
            Route("/faults", self.faults, methods=["POST"]),
            Route("/clock", self.clock, methods=["POST"]),
            Route("/reset", self.reset, methods=["POST"]),
        ]

    async def index(self, request: Request) -> Response:
        root = f"{request.url.scheme}://{request.url.netloc}"
        async with self._store.session() as world:
            config = world.webhooks
        return JSONResponse(
            {
                "vesicash": {
                    "base_url": f"{root}/vesicash",
                    "public_key": VESICASH_PUBLIC_KEY,
                    "secret_key": VESICASH_SECRET_KEY,
                    "webhook_secret": webhook_secret(config, ProviderName.VESICASH),
                },
                "novasend": {
                    "base_url": f"{root}/novasend",
                    "api_key": NOVASEND_API_KEY,
                    "api_client": NOVASEND_API_CLIENT,
                    "webhook_secret": webhook_secret(config, ProviderName.NOVASEND),
                },
            }
        )

    async def create_payment(self, request: Request) -> Response:
        try:
            body = strict_object(await request.body(), _PAYMENT_FIELDS)
            async with self._store.session() as world:
                payment = _new_payment(world, body)
                world.add_payment(payment)
        except ControlError as exc:
            return bad_request(exc)
        return JSONResponse({"reference": payment.reference})

    async def refunds(self, request: Request) -> Response:
        async with self._store.session() as world:
            now = world.now()
            listing = [self._listed(payment, refund, now) for payment, refund in world.refunds()]
        return JSONResponse(listing)

    def _listed(self, payment: SandboxPayment, refund: SandboxRefund, now: datetime) -> dict[str, Any]:
        return {
            "provider": payment.provider.value,
            "payment_reference": payment.reference,
            "refund_reference": refund.reference,
            "amount": payment.money(refund.amount).wire_number(),
            "currency": payment.currency,
            "status": refund.settlement(now, self._unit).status.value,
        }

    async def duplicate_refund(self, request: Request) -> Response:
        """A second execution of a refund: a copy with its own reference, made now, carrying
        the same reason and external reference (what a provider executing a request twice does)."""
        try:
            strict_object(await request.body(), frozenset())
            async with self._store.session() as world:
                payment, refund = _refund(world, request.path_params["reference"])
                now = world.now()
                copy = refund.model_copy(update={
                    "reference": (vesicash if payment.provider is ProviderName.VESICASH else novasend).new_refund_reference(),
                    "created_at": now,
                    "transaction_reference": refund.transaction_reference and novasend.new_transaction_reference(),
                    "notified": RefundStatus.PENDING,
                })  # fmt: skip
                payment.refunds.append(copy)
                return JSONResponse(self._listed(payment, copy, now))
        except ControlError as exc:
            return bad_request(exc)

    async def amend_refund(self, request: Request) -> Response:
        """Change a refund behind everyone's back: its ``status`` (with ``failure_reason``)
        from now on, and/or its ``amount`` (major units)."""
        try:
            body = strict_object(await request.body(), _AMEND_FIELDS)
            async with self._store.session() as world:
                payment, refund = _refund(world, request.path_params["reference"])
                now = world.now()
                if "amount" in body:
                    refund.amount = _money(body, "amount", payment.currency).minor
                if "status" in body:
                    try:
                        refund.amended_status = RefundStatus(body["status"])
                    except ValueError:
                        raise ControlError(f"status must be one of {', '.join(_AMENDABLE)}") from None
                    if refund.amended_status not in _AMENDABLE:
                        raise ControlError(f"status must be one of {', '.join(_AMENDABLE)}")
                    reason = body.get("failure_reason")
                    if reason is not None and not isinstance(reason, str):
                        raise ControlError("failure_reason must be a string")
                    refund.amended_reason = reason
                    refund.amended_at = now
                return JSONResponse(self._listed(payment, refund, now))
        except ControlError as exc:
            return bad_request(exc)

    async def faults(self, request: Request) -> Response:
        try:
            values = checked_fields(await request.body(), _FAULT_FIELDS, whole_number)
        except ControlError as exc:
            return bad_request(exc)
        async with self._store.session() as world:
            world.faults = world.faults.model_copy(update=values)
            return JSONResponse(world.faults.model_dump())

    async def clock(self, request: Request) -> Response:
        try:
            body = strict_object(await request.body(), _CLOCK_FIELDS)
            seconds = body.get("advance_seconds")
            if not is_number(seconds) or seconds < 0:
                raise ControlError("advance_seconds must be a number of seconds, 0 or more")
            async with self._store.session() as world:
                offset = world.clock_offset_seconds + seconds
                if offset > _MAX_CLOCK_OFFSET.total_seconds():
                    raise ControlError("the clock may run at most 100 years ahead: reset it")
                world.clock_offset_seconds = offset
                return JSONResponse({"now": iso(world.now())})
        except ControlError as exc:
            return bad_request(exc)

    async def reset(self, request: Request) -> Response:
        world = await self._store.reset()
        return JSONResponse({"now": iso(world.now())})


def bad_request(exc: ControlError) -> Response:
    """400 ``{"error": <why>}``."""
    return JSONResponse({"error": str(exc)}, status_code=400)


def strict_object(raw: bytes, fields: frozenset[str]) -> dict[str, Any]:
    """The body as a JSON object holding only known ``fields`` (an empty body is ``{}``)."""
    body = json_object(raw or b"{}")
    if body is None:
        raise ControlError("the body must be a JSON object")
    unknown = body.keys() - fields
    if unknown:
        raise ControlError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return body


def checked_fields(
    raw: bytes, fields: frozenset[str], check: Callable[[dict[str, Any], str], Any]
) -> dict[str, Any]:
    """Each field of the body (as ``strict_object`` reads it) through ``check(body, name)``."""
    body = strict_object(raw, fields)
    return {name: check(body, name) for name in body}


def whole_number(body: dict[str, Any], name: str) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ControlError(f"{name} must be a whole number, 0 or more")
    return value


def _new_payment(world: World, body: dict[str, Any]) -> SandboxPayment:
    """A payment from ``POST /_sandbox/payments``, every field checked with a clear message."""
    try:
        provider = ProviderName(body.get("provider"))
    except ValueError:
        raise ControlError("provider must be 'vesicash' or 'novasend'") from None
    currency = body.get("currency")
    if not isinstance(currency, str) or currency not in CURRENCIES[provider]:
        allowed = ", ".join(sorted(CURRENCIES[provider]))
        raise ControlError(f"currency must be one of {allowed} for {provider.value}")
    amount = _money(body, "amount", currency)
    if amount.minor <= 0:
        raise ControlError("amount must be more than zero")
    phone = body.get("phone")
    e164 = parse_mobile(phone) if isinstance(phone, str) else None
    if e164 is None:
        raise ControlError(f"phone {phone!r} is not a valid mobile number in E.164 form")
    status_word = body.get("status", PaymentStatus.SUCCESSFUL.value)
    status = _STATUS_WORDS[provider].get(status_word) if isinstance(status_word, str) else None
    if status is None:
        allowed = ", ".join(sorted(_STATUS_WORDS[provider]))
        raise ControlError(f"status must be one of {allowed} for {provider.value}")
    age_days = body.get("age_days", 0)
    if not is_number(age_days) or not 0 <= age_days <= _MAX_AGE_DAYS:
        raise ControlError(f"age_days must be a number of days from 0 to {_MAX_AGE_DAYS}")
    name = body.get("customer_name", "Demo Customer")
    if not isinstance(name, str) or not name.strip():
        raise ControlError("customer_name must be a non-empty string")
    balance = _money(body, "merchant_balance", currency) if "merchant_balance" in body else None
    if balance is not None and balance.minor < 0:
        raise ControlError("merchant_balance must be 0 or more")
    return SandboxPayment(
        provider=provider,
        reference=_reference(provider),
        number=world.take_number(),
        amount=amount.minor,
        currency=currency,
        status=status,
        customer_name=name.strip(),
        phone=e164,
        created_at=world.now() - timedelta(days=age_days),
        merchant_balance=None if balance is None else balance.minor,
    )


def _money(body: dict[str, Any], name: str, currency: str) -> Money:
    value = body.get(name)
    if not is_number(value):
        raise ControlError(f"{name} must be a number in major units (e.g. 150 or 12.50)")
    if abs(value) > MAX_MAJOR_UNITS:
        raise ControlError(f"{name} must be at most {MAX_MAJOR_UNITS:,}")
    try:
        return Money.from_major(value, currency)
    except MoneyError as exc:
        raise ControlError(f"{name}: {exc}") from None


def _refund(world: World, reference: str) -> tuple[SandboxPayment, SandboxRefund]:
    for payment, refund in world.refunds():
        if refund.reference == reference:
            return payment, refund
    raise ControlError(f"no refund {reference[:60]!r}")


def _reference(provider: ProviderName) -> str:
    if provider is ProviderName.VESICASH:
        return "VSC-" + token(10, "0123456789ABCDEF")
    return "tr_" + token(24)
