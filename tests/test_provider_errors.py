"""Provider clients against a scripted loopback server (real HTTP): bad bodies, HTTP errors,
transport failures, what goes on the wire, and secrets that never show."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refund_tui.core.credentials import FIELDS
from refund_tui.core.models import (
    ErrorCode,
    Payment,
    PaymentStatus,
    ProviderError,
    ProviderName,
    RefundStatus,
)
from refund_tui.core.money import Money
from refund_tui.core.secret import Secret
from refund_tui.providers import client_classes, make_provider
from refund_tui.providers.base import ProviderSettings, RefundDraft
from refund_tui.providers.http import retry_after

SECRETS = {
    ProviderName.VESICASH: {
        "public_key": Secret("vsc_pub_TEST_public_value_1234"),
        "secret_key": Secret("vsc_sec_TEST_secret_value_5678"),
    },
    ProviderName.NOVASEND: {
        "api_key": Secret("nvs_TEST_api_key_value_9012"),
        "api_client": Secret("nvs_TEST_api_client_value_3456"),
    },
}
SECRET_TEXTS = [secret.reveal() for pair in SECRETS.values() for secret in pair.values()] + [
    base64.b64encode(b"nvs_TEST_api_key_value_9012:nvs_TEST_api_client_value_3456").decode()
]
PAYMENT_PATH = {ProviderName.VESICASH: "/v1/payment/P1", ProviderName.NOVASEND: "/v1/payin/P1"}

VESICASH_PAYMENT = {
    "id": 7,
    "amount": 1234567.89,
    "currency": "GHS",
    "status": "successful",
    "method": "mobilemoney",
    "reference": "P1",
    "created_at": "2025-08-23T12:34:48",
    "customer_first_name": "Ama",
    "customer_last_name": "Mensah",
    "phone_number": "233241234567",
    "refunds": [
        {
            "reference": "VRF-1",
            "status": "on_hold",
            "amount": 0.1,
            "reason": "x",
            "created_at": "2025-08-23T13:00:00Z",
            "completed_at": None,
            "failure_reason": None,
        }
    ],
}
NOVASEND_REFUND = {
    "type": "refund",
    "reference": "rf_1",
    "originalReference": "P1",
    "amount": 150,
    "currency": "XOF",
    "status": "processing",
    "reason": "Client cancellation",
    "createdAt": "2025-08-23T12:34:48.189Z",
    "externalReference": "ext-1",
}
NOVASEND_PAYIN = {
    "id": "P1",
    "type": "payin",
    "reference": "P1",
    "status": "refunded_partially",
    "amount": 20000,
    "currency": "XOF",
    "createdAt": "2025-08-23T12:00:00Z",
    "customer": {"name": "Aya Kouassi", "phoneNumber": "+2250701234567"},
    "refunds": [NOVASEND_REFUND],
}


class Scripted:
    """Answers each request path with what the test scripted (404 otherwise); records requests."""

    def __init__(self) -> None:
        self.answers: dict[str, Response] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.url = ""

    def answer(self, path: str, response: Response) -> None:
        self.answers[path] = response

    async def handle(self, request: Request) -> Response:
        self.requests.append(
            (request.method, request.url.path, dict(request.headers), await request.body())
        )
        return self.answers.get(request.url.path, JSONResponse({"message": "no"}, 404))


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[Scripted]:
    """A throwaway Starlette app on an ephemeral loopback port, served from a daemon thread."""
    script = Scripted()
    app = Starlette(routes=[Route("/{path:path}", script.handle, methods=["GET", "POST"])])
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="off", access_log=False, http="h11")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.005)
    script.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield script
    server.should_exit = True
    thread.join(5)
    sock.close()


@pytest.fixture
def scripted(scripted_server: Scripted) -> Scripted:
    """The scripted server with no answers and no requests recorded yet."""
    scripted_server.answers.clear()
    scripted_server.requests.clear()
    return scripted_server


@pytest.fixture
async def clients(scripted: Scripted) -> AsyncIterator[dict[ProviderName, object]]:
    made = {
        name: make_provider(name, ProviderSettings(scripted.url, timeout_seconds=2), SECRETS[name])
        for name in ProviderName
    }
    yield made
    for client in made.values():
        await client.aclose()


async def failure(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


def html(status: int) -> Response:
    return Response(
        "<html><body><h1>Bad gateway</h1></body></html>", status, media_type="text/html"
    )


@pytest.mark.parametrize("provider", list(ProviderName))
@pytest.mark.parametrize("status", [200, 404])
async def test_html_page_is_a_bad_response_naming_the_status(scripted, clients, provider, status):
    scripted.answer(PAYMENT_PATH[provider], html(status))

    error = await failure(clients[provider].get_payment("P1"))

    assert error.code is ErrorCode.BAD_RESPONSE
    assert (
        error.message
        == f"{provider.value.title()} answered with an HTML page instead of JSON (HTTP {status})"
    )
    assert error.http_status == status


@pytest.mark.parametrize("provider", list(ProviderName))
async def test_html_gateway_error_is_a_server_error(scripted, clients, provider):
    scripted.answer(PAYMENT_PATH[provider], html(502))

    error = await failure(clients[provider].get_payment("P1"))

    assert error.code is ErrorCode.SERVER_ERROR
    assert error.message.endswith("server error (HTTP 502, an HTML page instead of JSON)")


@pytest.mark.parametrize("provider", list(ProviderName))
@pytest.mark.parametrize(
    ("body", "problem"),
    [('{"status":"success","data":{"ref', "a body that is not valid JSON"), ("", "an empty body")],
)
async def test_truncated_or_empty_json_is_a_bad_response(
    scripted, clients, provider, body, problem
):
    scripted.answer(PAYMENT_PATH[provider], Response(body, 200, media_type="application/json"))

    error = await failure(clients[provider].get_payment("P1"))

    assert error.code is ErrorCode.BAD_RESPONSE
    assert problem in error.message


async def test_missing_field_is_named(scripted, clients):
    del_reference = {key: value for key, value in NOVASEND_REFUND.items() if key != "reference"}
    scripted.answer("/v1/payin/P1/refund", JSONResponse(del_reference))
    payment_without_currency = {k: v for k, v in VESICASH_PAYMENT.items() if k != "currency"}
    scripted.answer(
        "/v1/payment/P1", JSONResponse({"status": "success", "data": payment_without_currency})
    )
    novasend = clients[ProviderName.NOVASEND]

    refund_error = await failure(
        novasend.send_refund(novasend.build_refund(draft(ProviderName.NOVASEND)))
    )
    payment_error = await failure(clients[ProviderName.VESICASH].get_payment("P1"))

    assert refund_error.code is payment_error.code is ErrorCode.BAD_RESPONSE
    assert refund_error.message == "Novasend's answer is missing 'reference'"
    assert payment_error.message == "Vesicash's answer is missing 'data.currency'"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"amount": "lots"}, "'amount'"),
        ({"createdAt": "yesterday"}, "'createdAt'"),
        ({"amount": 150.5}, "150.5"),
    ],
)
async def test_invalid_field_is_named(scripted, clients, change, named):
    scripted.answer("/v1/payin/P1", JSONResponse(NOVASEND_PAYIN | change))

    error = await failure(clients[ProviderName.NOVASEND].get_payment("P1"))

    assert error.code is ErrorCode.BAD_RESPONSE
    assert named in error.message


async def test_vesicash_payment_is_converted_exactly_with_unknown_words_tolerated(
    scripted, clients
):
    scripted.answer("/v1/payment/P1", JSONResponse({"status": "success", "data": VESICASH_PAYMENT}))

    payment = await clients[ProviderName.VESICASH].get_payment("P1")

    assert payment.amount == Money(123456789, "GHS")
    assert payment.customer_name == "Ama Mensah"
    assert payment.customer_phone == "+233241234567"
    assert payment.created_at == datetime(2025, 8, 23, 12, 34, 48, tzinfo=UTC)
    (refund,) = payment.refunds
    assert refund.amount == Money(10, "GHS")
    assert refund.status is RefundStatus.UNKNOWN


async def test_novasend_unknown_payin_status_and_refund_object(scripted, clients):
    scripted.answer("/v1/payin/P1", JSONResponse(NOVASEND_PAYIN))

    payment = await clients[ProviderName.NOVASEND].get_payment("P1")

    assert payment.status is PaymentStatus.UNKNOWN
    assert payment.reference == "P1"
    assert payment.refunds[0].external_reference == "ext-1"
    assert payment.refunds[0].status is RefundStatus.PROCESSING


async def test_novasend_refund_status_falls_back_to_the_payins_refunds(scripted, clients):
    scripted.answer("/v1/payin/P1", JSONResponse(NOVASEND_PAYIN))

    refund = await clients[ProviderName.NOVASEND].refund_status("P1", "rf_1")

    assert refund.reference == "rf_1"
    assert [path for _, path, _, _ in scripted.requests] == ["/v1/payin/rf_1", "/v1/payin/P1"]


@pytest.mark.parametrize("provider", list(ProviderName))
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds_is_kept(scripted, clients, provider, status):
    body = {"status": "error", "code": status, "message": "slow down", "data": None}
    scripted.answer(
        PAYMENT_PATH[provider], JSONResponse(body, status, headers={"Retry-After": "7"})
    )

    error = await failure(clients[provider].get_payment("P1"))

    assert error.code is {429: ErrorCode.RATE_LIMITED, 503: ErrorCode.SERVER_ERROR}[status]
    assert error.retry_after == 7.0
    assert error.raw_message == "slow down"


def test_retry_after_as_an_http_date():
    now = datetime(2025, 8, 23, 12, 0, tzinfo=UTC)

    assert retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0.0
    assert retry_after("soon", now) is None


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        (
            ProviderName.VESICASH,
            {"status": "error", "code": 418, "message": "Teapot mode", "data": None},
        ),
        (ProviderName.NOVASEND, {"code": "teapot", "message": "Teapot mode", "statusCode": 418}),
    ],
)
async def test_undocumented_4xx_is_rejected_with_the_message_quoted(
    scripted, clients, provider, body
):
    scripted.answer(PAYMENT_PATH[provider], JSONResponse(body, 418))

    error = await failure(clients[provider].get_payment("P1"))

    assert error.code is ErrorCode.REJECTED
    assert error.message == f'{provider.value.title()} refused the request: "Teapot mode"'
    assert (error.http_status, error.raw_message) == (418, "Teapot mode")


@pytest.mark.parametrize("provider", list(ProviderName))
async def test_connection_refused_is_a_connection_error(provider):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    client = make_provider(
        provider, ProviderSettings(f"http://127.0.0.1:{port}"), SECRETS[provider]
    )

    error = await failure(client.get_payment("P1"))
    await client.aclose()

    assert error.code is ErrorCode.CONNECTION
    assert (
        error.message == f"could not connect to {provider.value.title()} at http://127.0.0.1:{port}"
    )


@pytest.mark.parametrize("provider", list(ProviderName))
async def test_missing_credential_is_unauthorized_before_any_request(provider):
    partial = dict(list(SECRETS[provider].items())[:1])

    with pytest.raises(ProviderError) as caught:
        make_provider(provider, ProviderSettings("http://127.0.0.1:9"), partial)

    assert caught.value.code is ErrorCode.UNAUTHORIZED
    assert "refund-tui credentials status" in caught.value.message


async def test_a_secret_that_cannot_be_a_header_never_shows(scripted):
    bad = {
        "public_key": Secret("vsc_pub_line\nbreak_SECRET"),
        "secret_key": Secret("vsc_sec_ok_SECRET"),
    }
    client = make_provider(ProviderName.VESICASH, ProviderSettings(scripted.url), bad)

    error = await failure(client.get_payment("P1"))
    await client.aclose()

    assert error.code is ErrorCode.UNAUTHORIZED
    assert "SECRET" not in f"{error} {error!r} {error.raw_message}"


async def test_wire_headers_and_body_sent_unchanged(scripted, clients):
    scripted.answer(
        "/v1/payment/refunds/process",
        JSONResponse({"status": "success", "data": {"status": "pending", "reference": "VRF-9"}}),
    )
    scripted.answer("/v1/payment/P1", JSONResponse({"status": "success", "data": VESICASH_PAYMENT}))
    scripted.answer(
        "/v1/countries",
        JSONResponse(
            {
                "status": "success",
                "data": [
                    {"id": "GH-1", "name": "Ghana", "country_code": "GH", "currency_code": "GHS"}
                ],
            }
        ),
    )
    scripted.answer("/v1/payin/P1/refund", JSONResponse(NOVASEND_REFUND))
    vesicash, novasend = clients[ProviderName.VESICASH], clients[ProviderName.NOVASEND]
    vesicash_request = vesicash.build_refund(draft(ProviderName.VESICASH))
    novasend_request = novasend.build_refund(draft(ProviderName.NOVASEND))

    refund = await vesicash.send_refund(vesicash_request)
    countries = await vesicash.countries()
    await novasend.send_refund(novasend_request)

    sent = {path: (headers, body) for _, path, headers, body in scripted.requests}
    headers, body = sent["/v1/payment/refunds/process"]
    assert body == vesicash_request.body.encode()
    assert headers["public-key"] == "vsc_pub_TEST_public_value_1234"
    assert headers["secret-key"] == "vsc_sec_TEST_secret_value_5678"
    assert "secret-key" not in sent["/v1/countries"][0]
    assert countries[0].id == "GH-1"
    assert (refund.status, refund.amount, refund.reference) == (
        RefundStatus.PENDING,
        Money(12050, "GHS"),
        "VRF-9",
    )
    headers, body = sent["/v1/payin/P1/refund"]
    assert body == novasend_request.body.encode()
    assert headers["x-idempotency-key"] == "key-1"
    assert headers["accept-language"] == "en"
    assert base64.b64decode(headers["authorization"].removeprefix("Basic ")) == (
        b"nvs_TEST_api_key_value_9012:nvs_TEST_api_client_value_3456"
    )


async def test_no_secret_in_errors_reprs_or_logs(scripted, clients, caplog):
    caplog.set_level(logging.DEBUG)
    scripted.answer(
        "/v1/payment/P1",
        JSONResponse(
            {
                "status": "error",
                "code": 401,
                "message": "invalid or missing API keys",
                "data": None,
            },
            401,
        ),
    )
    scripted.answer("/v1/payin/P1", html(500))
    errors = []
    for client in clients.values():
        errors.append(await failure(client.get_payment("P1")))
        errors.append(await failure(client.get_payment("missing")))
    shown = " ".join(
        [caplog.text]
        + [f"{e} {e!r} {e.raw_message}" for e in errors]
        + [repr(client) for client in clients.values()]
    )

    assert errors[0].code is ErrorCode.UNAUTHORIZED
    assert "GET /v1/payment/P1 -> 401" in caplog.text
    for secret in SECRET_TEXTS:
        assert secret not in shown


def draft(provider: ProviderName) -> RefundDraft:
    currency = "GHS" if provider is ProviderName.VESICASH else "XOF"
    payment = Payment(
        reference="P1",
        provider=provider,
        amount=Money(50000, currency),
        status=PaymentStatus.SUCCESSFUL,
        customer_name="A",
        customer_phone="+233241234567",
        created_at=datetime(2025, 8, 23, tzinfo=UTC),
    )
    amount = Money.from_major(Decimal("120.50") if currency == "GHS" else 150, currency)
    return RefundDraft(
        payment=payment,
        amount=amount,
        reason="Client cancellation",
        phone_e164="+233241234567",
        country_id="83",
        webhook_url=None,
        idempotency_key="key-1",
        external_reference="ext-1",
    )


def test_clients_need_the_credentials_the_store_keeps():
    assert {name: client_classes()[name].credential_names for name in ProviderName} == FIELDS


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (400, "PAYMENT NOT FOUND.", ErrorCode.PAYMENT_NOT_FOUND),
        (404, "gone", ErrorCode.PAYMENT_NOT_FOUND),
        (409, "again?", ErrorCode.DUPLICATE_REFUND),
        (422, "key misuse", ErrorCode.IDEMPOTENCY_KEY),
    ],
)
async def test_errors_known_by_message_any_case_or_by_status(
    scripted, clients, status, message, code
):
    body = {"status": "error", "code": status, "message": message, "data": None}
    scripted.answer("/v1/payment/P1", JSONResponse(body, status))

    error = await failure(clients[ProviderName.VESICASH].get_payment("P1"))

    assert (error.code, error.http_status, error.raw_message) == (code, status, message)


#: A title change, a colour and a carriage return, as a hostile or broken provider might send.
ESCAPES = "\x1b]0;PWNED\x07\x1b[31m\r"


async def test_provider_text_arrives_without_terminal_controls(scripted, clients):
    refund = NOVASEND_REFUND | {
        "reason": f"Client{ESCAPES} cancellation",
        "failureReason": f"No{ESCAPES} wallet",
    }
    payin = NOVASEND_PAYIN | {"customer": {"name": f"Aya{ESCAPES}\u202e Kouassi"}, "refunds": [refund]}
    scripted.answer("/v1/payin/P1", JSONResponse(payin))

    payment = await clients[ProviderName.NOVASEND].get_payment("P1")

    assert payment.customer_name == "Aya  Kouassi"
    assert (payment.refunds[0].reason, payment.refunds[0].failure_reason) == (
        "Client  cancellation",
        "No  wallet",
    )


@pytest.mark.parametrize("provider", list(ProviderName))
async def test_a_provider_error_message_is_quoted_without_terminal_controls(scripted, clients, provider):
    body = {"code": f"tea{ESCAPES}pot", "message": f"Teapot{ESCAPES} mode", "statusCode": 418}
    scripted.answer(PAYMENT_PATH[provider], JSONResponse(body, 418))

    error = await failure(clients[provider].get_payment("P1"))

    assert error.message == f'{provider.value.title()} refused the request: "Teapot  mode"'
    assert (error.raw_code, error.raw_message) == ("tea pot", "Teapot  mode")


async def test_a_reference_with_terminal_controls_is_a_bad_response_not_altered(scripted, clients):
    """Changing an identifier could merge two refunds or poll the wrong one: it is refused."""
    refund = NOVASEND_REFUND | {"reference": f"rf_1{ESCAPES}"}
    scripted.answer("/v1/payin/P1", JSONResponse(NOVASEND_PAYIN | {"refunds": [refund]}))

    error = await failure(clients[ProviderName.NOVASEND].get_payment("P1"))

    assert error.code is ErrorCode.BAD_RESPONSE
    assert error.message == (
        "Novasend's answer has an invalid 'refunds.0.reference': "
        "Value error, an identifier cannot hold control or invisible characters"
    )
