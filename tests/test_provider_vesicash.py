"""The Vesicash client against the simulator over real HTTP: every seed rule and fault."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from refund_tui.core.models import (
    Country,
    ErrorCode,
    Payment,
    PaymentStatus,
    ProviderError,
    ProviderName,
    RefundStatus,
)
from refund_tui.core.money import Money, parse_amount
from refund_tui.core.secret import Secret
from refund_tui.providers.base import ProviderSettings, RefundDraft
from refund_tui.providers.vesicash import VesicashClient
from refund_tui.sandbox.demo import VESICASH_PUBLIC_KEY, VESICASH_SECRET_KEY

PHONE = "+233241234567"
REASON = "Customer cancellation"
DEMO_KEYS = {"public_key": Secret(VESICASH_PUBLIC_KEY), "secret_key": Secret(VESICASH_SECRET_KEY)}


def connect(
    sandbox, *, timeout: float = 5.0, keys: dict[str, Secret] = DEMO_KEYS
) -> VesicashClient:
    return VesicashClient(ProviderSettings(sandbox.vesicash_url, timeout_seconds=timeout), keys)


@pytest.fixture
async def client(sandbox) -> AsyncIterator[VesicashClient]:
    made = connect(sandbox)
    yield made
    await made.aclose()


async def new_payment(sandbox, client, *, phone: str = PHONE, **options) -> Payment:
    reference = sandbox.create_payment(
        "vesicash", 500, "GHS", phone, customer_name="Ama Mensah", **options
    )
    return await client.get_payment(reference)


def draft(payment: Payment, amount: str | Money = "120.50", **changes) -> RefundDraft:
    money = amount if isinstance(amount, Money) else parse_amount(amount, payment.currency)
    made = RefundDraft(
        payment=payment,
        amount=money,
        reason=REASON,
        phone_e164=payment.customer_phone,
        country_id="83",
        webhook_url=None,
        idempotency_key=str(uuid.uuid4()),
        external_reference=f"rtui-{uuid.uuid4().hex[:20]}",
    )
    return replace(made, **changes)


async def refund(client, payment: Payment, amount: str | Money = "120.50", **changes):
    return await client.send_refund(client.build_refund(draft(payment, amount, **changes)))


async def failure(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


def executed(sandbox, payment: Payment) -> list[dict]:
    return [r for r in sandbox.refunds() if r["payment_reference"] == payment.reference]


async def test_payment_is_read_into_the_neutral_model(sandbox, client):
    payment = await new_payment(sandbox, client)

    assert payment.provider is ProviderName.VESICASH
    assert payment.amount == Money(50000, "GHS")
    assert payment.status is PaymentStatus.SUCCESSFUL
    assert (payment.customer_name, payment.customer_phone) == ("Ama Mensah", PHONE)
    assert payment.created_at.tzinfo is not None
    assert payment.refunds == ()


async def test_refund_body_is_exactly_the_seed_json(sandbox, client):
    payment = await new_payment(sandbox, client)

    plain = client.build_refund(draft(payment))
    hooked = client.build_refund(draft(payment, webhook_url="https://example.com/hook"))
    named = client.build_refund(draft(payment, country_id="GH-1"))

    assert plain.body == (
        f'{{"amount":120.5,"payment_reference":"{payment.reference}","country_id":83,'
        f'"transfer_to":"mobile_number","momo_phone_number":"233241234567",'
        f'"reason":"{REASON} [{plain.external_reference}]"}}'
    )
    assert list(json.loads(hooked.body)) == [
        "amount",
        "payment_reference",
        "country_id",
        "transfer_to",
        "momo_phone_number",
        "webhook_url",
        "reason",
    ]
    assert json.loads(named.body)["country_id"] == "GH-1"
    assert (plain.method, plain.path, plain.idempotency_key) == (
        "POST",
        "/v1/payment/refunds/process",
        None,
    )


async def test_refund_is_queued_then_settles(sandbox, client):
    payment = await new_payment(sandbox, client)

    request = client.build_refund(draft(payment, webhook_url="https://example.com/hook"))
    sent = await client.send_refund(request)

    assert sent.status is RefundStatus.PROCESSING
    tagged = f"{REASON} [{request.external_reference}]"  # the tag that makes matching exact
    assert (sent.amount, sent.reason) == (Money(12050, "GHS"), tagged)
    assert [r["refund_reference"] for r in executed(sandbox, payment)] == [sent.reference]
    sandbox.advance(sandbox.settle_seconds * 5)
    settled = await client.refund_status(payment.reference, sent.reference)
    assert settled.status is RefundStatus.COMPLETED
    assert settled.updated_at is not None


@pytest.mark.parametrize(
    ("ending", "final", "reason"),
    [
        ("9901", RefundStatus.FAILED, "Recipient wallet not found"),
        ("9904", RefundStatus.PROCESSING, None),
    ],
)
async def test_destination_phone_decides_the_outcome(sandbox, client, ending, final, reason):
    payment = await new_payment(sandbox, client, phone=f"+23324999{ending}")
    sent = await refund(client, payment)

    sandbox.advance(sandbox.settle_seconds * 5)
    settled = await client.refund_status(payment.reference, sent.reference)

    assert (settled.status, settled.failure_reason) == (final, reason)


async def test_completed_refund_can_be_reversed(sandbox, client):
    payment = await new_payment(sandbox, client, phone="+233249999905")
    sent = await refund(client, payment)

    sandbox.advance(sandbox.settle_seconds * 3.5)
    completed = await client.refund_status(payment.reference, sent.reference)
    sandbox.advance(sandbox.settle_seconds * 4)
    reversed_ = await client.refund_status(payment.reference, sent.reference)

    assert (completed.status, reversed_.status) == (RefundStatus.COMPLETED, RefundStatus.REVERSED)


OVER_BALANCE = (
    "The refund amount is more than what is left to refund on this payment (or not above zero)"
)


@pytest.mark.parametrize(
    ("amount", "options"),
    [("500.01", {}), (Money(0, "GHS"), {}), (Money(-100, "GHS"), {}), ("1", {"status": "pending"})],
)
async def test_amount_outside_the_refundable_balance_is_refused(sandbox, client, amount, options):
    payment = await new_payment(sandbox, client, **options)

    error = await failure(refund(client, payment, amount))

    assert error.code is ErrorCode.AMOUNT_EXCEEDS_BALANCE
    assert error.message == OVER_BALANCE
    assert (error.http_status, error.raw_message) == (
        400,
        "Refund amount exceeds the remaining refundable balance",
    )
    assert executed(sandbox, payment) == []


async def test_partial_refunds_add_up_to_the_original_amount(sandbox, client):
    payment = await new_payment(sandbox, client)

    await refund(client, payment, "300")
    await refund(client, payment, "200")
    error = await failure(refund(client, payment, "0.01"))

    assert error.code is ErrorCode.AMOUNT_EXCEEDS_BALANCE
    assert len(executed(sandbox, payment)) == 2
    assert (await client.get_payment(payment.reference)).refunds_holding_balance() == payment.amount


@pytest.mark.parametrize(
    ("changes", "options", "code", "message"),
    [
        (
            {"phone_e164": "+2340999993"},
            {},
            ErrorCode.INVALID_PHONE,
            "The mobile money number was refused by the provider",
        ),
        (
            {},
            {"merchant_balance": 100},
            ErrorCode.INSUFFICIENT_FUNDS,
            "The merchant balance cannot cover this refund (or Vesicash hit a wallet error)",
        ),
        (
            {"country_id": "999"},
            {},
            ErrorCode.REJECTED,
            "Vesicash does not know this country: reload the country list",
        ),
    ],
)
async def test_documented_refusals(sandbox, client, changes, options, code, message):
    payment = await new_payment(sandbox, client, **options)

    error = await failure(refund(client, payment, **changes))

    assert (error.code, error.message, error.http_status) == (code, message, 400)
    assert executed(sandbox, payment) == []


async def test_unknown_payment_is_not_found(client):
    error = await failure(client.get_payment("VSC-NOPE"))

    assert error.code is ErrorCode.PAYMENT_NOT_FOUND
    assert error.message == "Vesicash has no payment with reference VSC-NOPE"
    assert (error.http_status, error.raw_code, error.raw_message) == (
        400,
        "400",
        "payment not found",
    )


async def test_refund_of_an_unknown_payment_is_not_found(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = client.build_refund(draft(replace(payment, reference="VSC-NOPE")))

    error = await failure(client.send_refund(request))

    assert error.code is ErrorCode.PAYMENT_NOT_FOUND


async def test_wrong_secret_key_is_unauthorized_but_countries_need_only_the_public_key(sandbox):
    keys = DEMO_KEYS | {"secret_key": Secret("vsc_sec_wrong_wrong_wrong")}
    client = connect(sandbox, keys=keys)

    error = await failure(client.get_payment("VSC-GH-FRESH"))
    countries = await client.countries()
    await client.aclose()

    assert error.code is ErrorCode.UNAUTHORIZED
    assert error.message == "credentials refused by Vesicash: check `refund-tui credentials status`"
    assert Country(id="83", name="Ghana", iso_code="GH", currency="GHS") in countries
    assert {"ZM", "NG", "KE"} <= {country.iso_code for country in countries}


async def test_server_error_then_recovery(sandbox, client):
    payment = await new_payment(sandbox, client)
    sandbox.faults(fail_next=1)

    error = await failure(refund(client, payment))
    sent = await refund(client, payment)

    assert (error.code, error.http_status) == (ErrorCode.SERVER_ERROR, 500)
    assert error.code.outcome_unknown
    assert [r["refund_reference"] for r in executed(sandbox, payment)] == [sent.reference]


async def test_dropped_connection_leaves_a_refund_that_its_tag_finds(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = client.build_refund(draft(payment))
    sandbox.faults(drop_next=1)

    error = await failure(client.send_refund(request))
    found = client.tagged_refunds(await client.get_payment(payment.reference), request)

    assert error.code is ErrorCode.CONNECTION
    assert [r["refund_reference"] for r in executed(sandbox, payment)] == [r.reference for r in found]


async def test_latency_beyond_the_timeout_is_a_timeout(sandbox):
    client = connect(sandbox, timeout=0.1)
    sandbox.faults(latency_ms=400)

    error = await failure(client.get_payment("VSC-GH-FRESH"))
    await client.aclose()

    assert error.code is ErrorCode.TIMEOUT
    assert error.message == "Vesicash did not answer within 0.1 s"


async def test_tagged_refunds_are_the_requests_own_executions_oldest_first(sandbox, client):
    payment = await new_payment(sandbox, client)
    request = client.build_refund(draft(payment, "50"))
    first = await client.send_refund(request)
    second = await client.send_refund(request)  # the same request executed twice
    await refund(client, payment, "50")  # same amount and reason, another attempt's tag
    await refund(client, payment, "60")
    record = await client.get_payment(payment.reference)

    tagged = client.tagged_refunds(record, request)

    assert [r.reference for r in tagged] == [first.reference, second.reference]


async def test_status_of_a_refund_the_payment_does_not_have(sandbox, client):
    payment = await new_payment(sandbox, client)

    error = await failure(client.refund_status(payment.reference, "VRF-nope"))

    assert error.code is ErrorCode.PAYMENT_NOT_FOUND
    assert error.message == f"Vesicash shows no refund VRF-nope on payment {payment.reference}"
