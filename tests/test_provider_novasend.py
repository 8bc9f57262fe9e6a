"""The Novasend client against the simulator over real HTTP: every seed rule, idempotency
and fault."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from refund_tui.core.models import (
    ErrorCode,
    Payment,
    PaymentStatus,
    ProviderError,
    ProviderName,
    RefundStatus,
)
from refund_tui.core.money import Money, parse_amount
from refund_tui.core.secret import Secret
from refund_tui.providers.base import ProviderSettings, RefundDraft, RefundRequest
from refund_tui.providers.novasend import NovasendClient
from refund_tui.sandbox.demo import NOVASEND_API_CLIENT, NOVASEND_API_KEY

PHONE = "+2250701234567"
REASON = "Client cancellation"
DEMO_KEYS = {"api_key": Secret(NOVASEND_API_KEY), "api_client": Secret(NOVASEND_API_CLIENT)}


def connect(
    url: str, *, timeout: float = 5.0, keys: dict[str, Secret] = DEMO_KEYS
) -> NovasendClient:
    return NovasendClient(ProviderSettings(url, timeout_seconds=timeout), keys)


@pytest.fixture
async def client(sandbox) -> AsyncIterator[NovasendClient]:
    made = connect(sandbox.novasend_url)
    yield made
    await made.aclose()


async def new_payment(sandbox, client, *, phone: str = PHONE, **options) -> Payment:
    reference = sandbox.create_payment(
        "novasend", 20000, "XOF", phone, customer_name="Aya Kouassi", **options
    )
    return await client.get_payment(reference)


def request_for(client, payment: Payment, amount: str | Money = "5000", **changes) -> RefundRequest:
    money = amount if isinstance(amount, Money) else parse_amount(amount, payment.currency)
    draft = RefundDraft(
        payment=payment,
        amount=money,
        reason=REASON,
        phone_e164=payment.customer_phone,
        country_id=None,
        webhook_url=None,
        idempotency_key=str(uuid.uuid4()),
        external_reference=f"rtui-{uuid.uuid4().hex[:20]}",
    )
    return client.build_refund(replace(draft, **changes))


async def failure(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


def executed(sandbox, payment: Payment) -> list[str]:
    return [
        r["refund_reference"]
        for r in sandbox.refunds()
        if r["payment_reference"] == payment.reference
    ]


async def test_payin_is_read_into_the_neutral_model(sandbox, client):
    payment = await new_payment(sandbox, client)

    assert payment.provider is ProviderName.NOVASEND
    assert payment.reference.startswith("tr_")
    assert payment.amount == Money(20000, "XOF")
    assert payment.status is PaymentStatus.SUCCESSFUL
    assert (payment.customer_name, payment.customer_phone) == ("Aya Kouassi", PHONE)


async def test_refund_body_is_exactly_the_seed_json(sandbox, client):
    payment = await new_payment(sandbox, client)

    request = request_for(client, payment, idempotency_key="key-1", external_reference="ext-1")

    assert request.body == f'{{"amount":5000,"reason":"{REASON}","externalReference":"ext-1"}}'
    assert (request.method, request.path, request.idempotency_key) == (
        "POST",
        f"/v1/payin/{payment.reference}/refund",
        "key-1",
    )


async def test_refund_is_pending_then_settles(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = request_for(client, payment)

    sent = await client.send_refund(request)

    assert sent.status is RefundStatus.PENDING
    assert (sent.amount, sent.reason, sent.external_reference) == (
        Money(5000, "XOF"),
        REASON,
        request.external_reference,
    )
    assert executed(sandbox, payment) == [sent.reference]
    sandbox.advance(sandbox.settle_seconds * 5)
    settled = await client.refund_status(payment.reference, sent.reference)
    assert settled.status is RefundStatus.COMPLETED
    assert settled.updated_at is not None


async def test_failed_refund_carries_its_reason(sandbox, client):
    payment = await new_payment(sandbox, client, phone="+2250701239901")
    sent = await client.send_refund(request_for(client, payment))

    sandbox.advance(sandbox.settle_seconds * 5)
    settled = await client.refund_status(payment.reference, sent.reference)

    assert (settled.status, settled.failure_reason) == (
        RefundStatus.FAILED,
        "Recipient wallet not found",
    )


async def test_same_key_and_body_replays_the_same_refund(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = request_for(client, payment)

    first = await client.send_refund(request)
    again = await client.send_refund(request)

    assert again.reference == first.reference
    assert executed(sandbox, payment) == [first.reference]


async def test_same_key_with_another_body_is_refused(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = request_for(client, payment)
    await client.send_refund(request)

    changed = replace(request, body=request.body.replace("5000", "4000"))
    error = await failure(client.send_refund(changed))

    assert error.code is ErrorCode.IDEMPOTENCY_KEY
    assert (error.http_status, error.raw_code) == (422, "idempotency_key_reused")
    assert len(executed(sandbox, payment)) == 1


async def test_missing_key_is_refused(sandbox, client):
    payment = await new_payment(sandbox, client)

    error = await failure(
        client.send_refund(replace(request_for(client, payment), idempotency_key=None))
    )

    assert error.code is ErrorCode.IDEMPOTENCY_KEY
    assert error.message == "Novasend needs an idempotency key and none was sent"
    assert executed(sandbox, payment) == []


async def test_same_external_reference_with_a_new_key_is_a_duplicate(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = request_for(client, payment)
    await client.send_refund(request)

    error = await failure(client.send_refund(replace(request, idempotency_key=str(uuid.uuid4()))))

    assert error.code is ErrorCode.DUPLICATE_REFUND
    assert (error.http_status, error.raw_code) == (409, "duplicate_refund")
    assert len(executed(sandbox, payment)) == 1


async def test_resend_while_the_first_is_executing_is_a_duplicate_in_progress(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = request_for(client, payment)
    sandbox.faults(latency_ms=200)

    first = asyncio.create_task(client.send_refund(request))
    await asyncio.sleep(0.05)
    error = await failure(client.send_refund(request))
    sent = await first

    assert error.code is ErrorCode.DUPLICATE_REFUND
    assert error.raw_code == "request_in_progress"
    assert executed(sandbox, payment) == [sent.reference]


async def test_timeout_then_same_key_resend_finds_the_one_refund(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = request_for(client, payment)
    hasty = connect(sandbox.novasend_url, timeout=0.1)
    sandbox.faults(latency_ms=300)

    error = await failure(hasty.send_refund(request))
    await hasty.aclose()
    await asyncio.sleep(0.3)
    sandbox.faults(latency_ms=0)
    resent = await client.send_refund(request)

    assert error.code is ErrorCode.TIMEOUT
    assert error.message == "Novasend did not answer within 0.1 s"
    assert executed(sandbox, payment) == [resent.reference]


async def test_dropped_connection_then_resend_and_match(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = request_for(client, payment)
    sandbox.faults(drop_next=1)

    error = await failure(client.send_refund(request))
    resent = await client.send_refund(request)
    found = client.tagged_refunds(await client.get_payment(payment.reference), request)

    assert error.code is ErrorCode.CONNECTION
    assert error.code.outcome_unknown
    assert executed(sandbox, payment) == [resent.reference] == [r.reference for r in found]
    assert client.tagged_refunds(payment, request) == []


async def test_server_error_executes_nothing_and_the_same_key_then_works(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = request_for(client, payment)
    sandbox.faults(fail_next=1)

    error = await failure(client.send_refund(request))
    sent = await client.send_refund(request)

    assert (error.code, error.http_status, error.raw_code) == (
        ErrorCode.SERVER_ERROR,
        500,
        "internal_server_error",
    )
    assert executed(sandbox, payment) == [sent.reference]


OVER_BALANCE = (
    "The refund amount is more than what is left to refund on this payment (or not above zero)"
)


@pytest.mark.parametrize(
    ("amount", "options", "code", "raw_code", "message"),
    [
        ("20001", {}, ErrorCode.AMOUNT_EXCEEDS_BALANCE, "invalid_amount", OVER_BALANCE),
        (Money(0, "XOF"), {}, ErrorCode.AMOUNT_EXCEEDS_BALANCE, "invalid_amount", OVER_BALANCE),
        (Money(-5, "XOF"), {}, ErrorCode.AMOUNT_EXCEEDS_BALANCE, "invalid_amount", OVER_BALANCE),
        (
            "5000",
            {"age_days": 8},
            ErrorCode.REFUND_NOT_ALLOWED,
            "refund_window_expired",
            "Novasend no longer allows refunding this payment (7-day window over)",
        ),
        (
            "5000",
            {"status": "failed"},
            ErrorCode.REFUND_NOT_ALLOWED,
            "payment_not_refundable",
            "Novasend does not allow refunding this payment: it is not a successful payment",
        ),
        (
            "5000",
            {"merchant_balance": 1000},
            ErrorCode.INSUFFICIENT_FUNDS,
            "insufficient_balance",
            "The merchant balance cannot cover this refund",
        ),
    ],
)
async def test_documented_refusals(sandbox, client, amount, options, code, raw_code, message):
    payment = await new_payment(sandbox, client, **options)

    error = await failure(client.send_refund(request_for(client, payment, amount)))

    assert (error.code, error.raw_code, error.message) == (code, raw_code, message)
    assert executed(sandbox, payment) == []


async def test_partial_refunds_add_up_to_the_original_amount(sandbox, client):
    payment = await new_payment(sandbox, client)

    await client.send_refund(request_for(client, payment, "15000"))
    await client.send_refund(request_for(client, payment, "5000"))
    error = await failure(client.send_refund(request_for(client, payment, "1")))

    assert error.code is ErrorCode.AMOUNT_EXCEEDS_BALANCE
    assert len(executed(sandbox, payment)) == 2


async def test_unknown_payin_and_refund_references(sandbox, client):
    payment = await new_payment(sandbox, client)
    sent = await client.send_refund(request_for(client, payment))

    unknown = await failure(client.get_payment("tr_nope"))
    refund_ref = await failure(client.get_payment(sent.reference))
    no_refund = await failure(client.refund_status(payment.reference, "rf_nope"))

    assert unknown.message == "Novasend has no payment with reference tr_nope"
    assert (unknown.code, unknown.http_status, unknown.raw_code) == (
        ErrorCode.PAYMENT_NOT_FOUND,
        404,
        "payment_not_found",
    )
    assert (
        refund_ref.message
        == f"{sent.reference} is a Novasend refund reference, not a payment reference"
    )
    assert no_refund.message == f"Novasend shows no refund rf_nope on payment {payment.reference}"


async def test_wrong_credentials_are_unauthorized(sandbox):
    client = connect(
        sandbox.novasend_url, keys=DEMO_KEYS | {"api_client": Secret("nvs_wrong_client")}
    )

    error = await failure(client.get_payment("tr_demo_fresh"))
    await client.aclose()

    assert error.code is ErrorCode.UNAUTHORIZED
    assert (error.http_status, error.raw_code) == (401, "unauthorized")
    assert error.message == "credentials refused by Novasend: check `refund-tui credentials status`"


async def test_countries_are_static_and_need_no_request():
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    client = connect(f"http://127.0.0.1:{port}")

    countries = await client.countries()
    await client.aclose()

    assert [(c.iso_code, c.currency) for c in countries] == [("CI", "XOF"), ("CM", "XAF")]


async def test_tagged_refunds_uses_the_external_reference(sandbox, client):
    payment = await new_payment(sandbox, client)
    ours = request_for(client, payment)
    other = await client.send_refund(request_for(client, payment))
    sent = await client.send_refund(ours)
    record = await client.get_payment(payment.reference)

    assert other.reference != sent.reference
    assert [r.reference for r in client.tagged_refunds(record, ours)] == [sent.reference]
    assert json.loads(ours.body)["externalReference"] == sent.external_reference
