"""The simulated Novasend API over real HTTP: auth, lookups, refund rules and idempotency."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from refund_tui.sandbox.demo import NOVASEND_API_CLIENT, NOVASEND_API_KEY

AUTH = (NOVASEND_API_KEY, NOVASEND_API_CLIENT)


@pytest.fixture(scope="module")
def keyed_client(sandbox_session) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_session.novasend_url, auth=AUTH) as client:
        yield client


@pytest.fixture
def api(sandbox, keyed_client) -> httpx.Client:
    """A client sending the demo credentials to a freshly reset simulator."""
    return keyed_client


def refund(
    api: httpx.Client, reference: str, body: dict | None = None, key: str | None = "new", **changes
) -> httpx.Response:
    body = body if body is not None else refund_body(**changes)
    headers = {} if key is None else {"X-Idempotency-Key": str(uuid.uuid4()) if key == "new" else key}
    return api.post(f"/v1/payin/{reference}/refund", json=body, headers=headers)


def refund_body(**changes) -> dict:
    body = {"amount": 1500, "reason": "Client cancellation", "externalReference": str(uuid.uuid4())}
    body.update(changes)
    return {name: value for name, value in body.items() if value is not ...}


def assert_error(response: httpx.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"code": code, "message": message, "statusCode": status}


def executed(sandbox, reference: str) -> list[dict]:
    return [r for r in sandbox.refunds() if r["payment_reference"] == reference]


@pytest.mark.parametrize(
    "auth",
    [
        None,
        ("nvs_DEMO_api_key", "wrong"),
        ("wrong", "nvs_DEMO_client"),
        "Bearer nvs_DEMO_api_key",
        "Basic not-base64!",
        "Basic bnZzX0RFTU9fYXBpX2tleQ==",
    ],
)
def test_every_route_needs_basic_auth(sandbox, auth):
    headers = {"Authorization": auth} if isinstance(auth, str) else {}
    with httpx.Client(
        base_url=sandbox.novasend_url, auth=auth if isinstance(auth, tuple) else None, headers=headers
    ) as client:
        assert_error(client.get("/v1/payin/tr_demo_fresh"), 401, "unauthorized", "Unauthorized")
        assert_error(refund(client, "tr_demo_fresh"), 401, "unauthorized", "Unauthorized")
        assert_error(refund(client, "tr_demo_fresh", key=None), 401, "unauthorized", "Unauthorized")
    assert executed(sandbox, "tr_demo_fresh") == []


def test_payin_lookup_has_the_contract_fields(api):
    response = api.get("/v1/payin/tr_demo_partial")
    assert response.status_code == 200
    payin = response.json()
    assert (payin["id"], payin["type"], payin["reference"]) == ("tr_demo_partial", "payin", "tr_demo_partial")
    assert (payin["status"], payin["amount"], payin["fee"], payin["chargedAmount"]) == (
        "success",
        25000,
        0,
        25000,
    )
    assert payin["currency"] == "XOF"
    assert payin["customer"] == {"name": "Koffi Yao", "phoneNumber": "+2250755550102"}
    assert payin["createdAt"].endswith("Z") and payin["failure"] is None
    [seeded] = payin["refunds"]
    assert seeded["reference"] == "rf_demo_partial_1"
    assert (seeded["status"], seeded["amount"], seeded["refundType"]) == ("completed", 5000, "partial")
    assert seeded["transaction"]["status"] == "success" and seeded["transaction"]["processedAt"]


def test_failed_payin_carries_a_failure(api):
    payin = api.get("/v1/payin/tr_demo_failed").json()
    assert payin["status"] == "failed"
    assert payin["failure"]["message"]


def test_refund_reference_looks_up_the_refund(api):
    response = api.get("/v1/payin/rf_demo_refunded_1")
    assert response.status_code == 200
    body = response.json()
    assert (body["type"], body["originalReference"], body["refundType"]) == (
        "refund",
        "tr_demo_refunded",
        "full",
    )


def test_unknown_reference_is_404(api):
    assert_error(api.get("/v1/payin/tr_nope"), 404, "payment_not_found", "Payment not found")
    assert_error(api.get("/v1/payin/VSC-GH-FRESH"), 404, "payment_not_found", "Payment not found")


def test_accepted_refund_returns_the_refund_object(sandbox, api):
    response = refund(
        api, "tr_demo_fresh", amount=1500, reason="Client cancellation", externalReference="ext-1"
    )
    assert response.status_code == 200, response.text
    assert "Idempotent-Replayed" not in response.headers
    body = response.json()
    assert body["reference"].startswith("rf_")
    assert {
        k: body[k]
        for k in (
            "type",
            "originalReference",
            "amount",
            "fee",
            "currency",
            "status",
            "reason",
            "refundType",
            "customerMsisdn",
            "customerName",
            "externalReference",
            "failureReason",
        )
    } == {
        "type": "refund",
        "originalReference": "tr_demo_fresh",
        "amount": 1500,
        "fee": 0,
        "currency": "XOF",
        "status": "pending",
        "reason": "Client cancellation",
        "refundType": "partial",
        "customerMsisdn": "+2250755550101",
        "customerName": "Aya Kouassi",
        "externalReference": "ext-1",
        "failureReason": None,
    }
    assert body["createdAt"].endswith("Z")
    assert body["transaction"]["reference"].startswith("tr_rf")
    assert (body["transaction"]["status"], body["transaction"]["processedAt"]) == ("pending", None)
    assert [r["refund_reference"] for r in executed(sandbox, "tr_demo_fresh")] == [body["reference"]]
    assert api.get(f"/v1/payin/{body['reference']}").json()["reference"] == body["reference"]


def test_full_amount_is_a_full_refund(api):
    assert refund(api, "tr_demo_fresh", amount=15000).json()["refundType"] == "full"


def test_missing_key_is_400_and_runs_nothing(sandbox, api):
    assert_error(
        refund(api, "tr_demo_fresh", key=None),
        400,
        "missing_idempotency_key",
        "X-Idempotency-Key header is required",
    )
    assert_error(
        refund(api, "tr_demo_fresh", key=""),
        400,
        "missing_idempotency_key",
        "X-Idempotency-Key header is required",
    )
    assert executed(sandbox, "tr_demo_fresh") == []


@pytest.mark.parametrize(
    "body",
    [
        refund_body(amount="1500"),
        refund_body(amount=None),
        refund_body(amount=False),
        refund_body(amount=...),
        refund_body(reason=3),
        refund_body(reason=...),
        refund_body(externalReference=""),
        refund_body(externalReference=12),
        refund_body(externalReference=...),
        refund_body(currency="XOF"),
    ],
)
def test_malformed_bodies_are_invalid(api, body):
    # Step 3 comes before step 4: even an unknown pay-in answers "invalid request".
    assert_error(refund(api, "tr_nope", body), 400, "invalid_request", "Invalid request")


@pytest.mark.parametrize("content", [b"nope", b"[]", b'{"amount": Infinity}', b""])
def test_non_object_bodies_are_invalid(api, content):
    response = api.post(
        "/v1/payin/tr_demo_fresh/refund",
        content=content,
        headers={"X-Idempotency-Key": str(uuid.uuid4()), "content-type": "application/json"},
    )
    assert_error(response, 400, "invalid_request", "Invalid request")


@pytest.mark.parametrize(
    ("reference", "changes", "status", "code"),
    [
        # Each case also breaks every later rule: the earliest rule must answer.
        ("tr_nope", {"amount": -1}, 404, "payment_not_found"),
        ("rf_demo_partial_1", {}, 404, "payment_not_found"),
        ("tr_demo_failed", {"amount": 999999}, 403, "payment_not_refundable"),
        ("tr_demo_old", {"amount": 999999}, 403, "refund_window_expired"),
        ("tr_demo_lowbal", {"amount": 0}, 400, "invalid_amount"),
        ("tr_demo_fresh", {"amount": -100}, 400, "invalid_amount"),
        ("tr_demo_fresh", {"amount": 15001}, 400, "invalid_amount"),
        ("tr_demo_fresh", {"amount": 100.5}, 400, "invalid_amount"),
        ("tr_demo_partial", {"amount": 20001}, 400, "invalid_amount"),
        ("tr_demo_refunded", {"amount": 1}, 400, "invalid_amount"),
        (
            "tr_demo_partial",
            {"externalReference": "demo-partial-1", "amount": 20000},
            409,
            "duplicate_refund",
        ),
        ("tr_demo_lowbal", {"amount": 10001}, 403, "insufficient_balance"),
    ],
)
def test_refund_rules_apply_in_contract_order(sandbox, api, reference, changes, status, code):
    messages = {
        "payment_not_found": "Payment not found",
        "payment_not_refundable": "Refund not allowed",
        "refund_window_expired": "Refund not allowed",
        "invalid_amount": "Invalid amount",
        "duplicate_refund": "Duplicate refund",
        "insufficient_balance": "Refund not allowed",
    }
    before = sandbox.refunds()
    assert_error(refund(api, reference, **changes), status, code, messages[code])
    assert sandbox.refunds() == before


def test_window_counts_from_the_payin_date(sandbox, api):
    six_days = sandbox.create_payment("novasend", 5000, "XOF", "+2250701234567", age_days=6.9)
    eight_days = sandbox.create_payment("novasend", 5000, "XOF", "+2250701234567", age_days=7.01)
    assert refund(api, six_days, amount=100).status_code == 200
    assert_error(refund(api, eight_days, amount=100), 403, "refund_window_expired", "Refund not allowed")
    sandbox.advance(0.2 * 86400)
    assert_error(refund(api, six_days, amount=100), 403, "refund_window_expired", "Refund not allowed")


def test_non_success_payins_are_not_refundable(sandbox, api):
    for status in ("processing", "expired", "failed"):
        reference = sandbox.create_payment("novasend", 5000, "XOF", "+2250701234567", status=status)
        assert api.get(f"/v1/payin/{reference}").json()["status"] == status
        assert_error(refund(api, reference), 403, "payment_not_refundable", "Refund not allowed")


def test_low_balance_is_drawn_down(api):
    # tr_demo_lowbal: the merchant can cover 10,000 XOF for this pay-in.
    assert refund(api, "tr_demo_lowbal", amount=6000).status_code == 200
    assert_error(
        refund(api, "tr_demo_lowbal", amount=4001), 403, "insufficient_balance", "Refund not allowed"
    )
    assert refund(api, "tr_demo_lowbal", amount=4000).status_code == 200


def test_same_key_same_body_replays_without_a_second_refund(sandbox, api):
    body = refund_body(amount=2000)
    first = refund(api, "tr_demo_fresh", body, key="key-1")
    again = refund(api, "tr_demo_fresh", body, key="key-1")
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert len(executed(sandbox, "tr_demo_fresh")) == 1


def test_same_body_with_reordered_keys_is_the_same_request(api):
    first = api.post(
        "/v1/payin/tr_demo_fresh/refund",
        headers={"X-Idempotency-Key": "k"},
        content=b'{"amount": 100, "reason": "r", "externalReference": "e"}',
    )
    again = api.post(
        "/v1/payin/tr_demo_fresh/refund",
        headers={"X-Idempotency-Key": "k"},
        content=b'{"externalReference":"e","reason":"r","amount":100}',
    )
    assert first.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_replay_is_the_stored_answer_even_after_settlement(sandbox, api):
    body = refund_body(amount=2000)
    first = refund(api, "tr_demo_fresh", body, key="key-1")
    sandbox.advance(60)
    again = refund(api, "tr_demo_fresh", body, key="key-1")
    assert again.json()["status"] == "pending"
    assert again.content == first.content


def test_rejections_are_stored_and_replayed(sandbox, api):
    body = refund_body(amount=15001)
    first = refund(api, "tr_demo_fresh", body, key="key-2")
    assert_error(first, 400, "invalid_amount", "Invalid amount")
    again = refund(api, "tr_demo_fresh", body, key="key-2")
    assert again.status_code == 400 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content


def test_key_reused_with_another_body_is_422(sandbox, api):
    assert refund(api, "tr_demo_fresh", refund_body(amount=100), key="key-3").status_code == 200
    assert_error(
        refund(api, "tr_demo_fresh", refund_body(amount=200), key="key-3"),
        422,
        "idempotency_key_reused",
        "Idempotency key already used with a different request",
    )
    assert_error(
        refund(api, "tr_demo_partial", refund_body(amount=100), key="key-3"),
        422,
        "idempotency_key_reused",
        "Idempotency key already used with a different request",
    )
    assert len(executed(sandbox, "tr_demo_fresh")) == 1


def test_duplicate_external_reference_under_a_new_key_is_409(sandbox, api):
    assert refund(api, "tr_demo_fresh", amount=100, externalReference="order-7").status_code == 200
    assert_error(
        refund(api, "tr_demo_fresh", amount=100, externalReference="order-7"),
        409,
        "duplicate_refund",
        "Duplicate refund",
    )
    assert refund(api, "tr_demo_partial", amount=100, externalReference="order-7").status_code == 200
    assert len(executed(sandbox, "tr_demo_fresh")) == 1


def test_key_still_executing_is_409(sandbox, api):
    sandbox.faults(latency_ms=300)
    body = refund_body(amount=100)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: refund(api, "tr_demo_fresh", body, key="slow"), range(2)))
    # Whichever claimed the key first runs; the other arrives while it is executing.
    [accepted, in_progress] = sorted(answers, key=lambda response: response.status_code)
    assert accepted.status_code == 200
    assert_error(in_progress, 409, "request_in_progress", "Duplicate refund")
    assert len(executed(sandbox, "tr_demo_fresh")) == 1
    replay = refund(api, "tr_demo_fresh", body, key="slow")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.content == accepted.content
