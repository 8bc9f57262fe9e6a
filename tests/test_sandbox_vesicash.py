"""The simulated Vesicash API over real HTTP: auth, lookups and every refund rule in order."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from refund_tui.sandbox.demo import VESICASH_PUBLIC_KEY, VESICASH_SECRET_KEY

KEYS = {"public-key": VESICASH_PUBLIC_KEY, "secret-key": VESICASH_SECRET_KEY}
GHANA, ZAMBIA = 83, 246
INVALID_BODY = "invalid request body"
NOT_FOUND = "payment not found"
TOO_MUCH = "Refund amount exceeds the remaining refundable balance"
BAD_PHONE = "Refund Provider service returned an error"
BAD_COUNTRY = "invalid country_id"
NO_FUNDS = "Insufficient funds or wallet error preventing refund processing"


@pytest.fixture(scope="module")
def keyed_client(sandbox_session) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_session.vesicash_url, headers=KEYS) as client:
        yield client


@pytest.fixture
def api(sandbox, keyed_client) -> httpx.Client:
    """A client sending the demo keys to a freshly reset simulator."""
    return keyed_client


def refund_body(reference: str = "VSC-GH-FRESH", **changes) -> dict:
    body = {
        "amount": 10.5,
        "payment_reference": reference,
        "country_id": GHANA,
        "transfer_to": "mobile_number",
        "momo_phone_number": "233245550101",
        "webhook_url": "https://merchant.example/hooks/vesicash",
        "reason": "Customer cancellation",
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not ...}


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"status": "error", "code": status, "message": message, "data": None}


def payment(api: httpx.Client, reference: str) -> dict:
    response = api.get(f"/v1/payment/{reference}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"public-key": VESICASH_PUBLIC_KEY},
        {"secret-key": VESICASH_SECRET_KEY},
        {"public-key": VESICASH_PUBLIC_KEY, "secret-key": "vsc_sec_wrong"},
        {"public-key": "vsc_pub_wrong", "secret-key": VESICASH_SECRET_KEY},
    ],
)
def test_payment_routes_need_both_keys(sandbox, headers):
    before = sandbox.refunds()
    with httpx.Client(base_url=sandbox.vesicash_url, headers=headers) as client:
        assert_error(client.get("/v1/payment/VSC-GH-FRESH"), 401, "invalid or missing API keys")
        assert_error(
            client.post("/v1/payment/refunds/process", json=refund_body()), 401, "invalid or missing API keys"
        )
    assert sandbox.refunds() == before


def test_countries_need_only_the_public_key(sandbox):
    with httpx.Client(base_url=sandbox.vesicash_url) as client:
        assert_error(client.get("/v1/countries"), 401, "invalid or missing API keys")
        response = client.get("/v1/countries", headers={"public-key": VESICASH_PUBLIC_KEY})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["code"]) == ("success", 200)
    countries = {c["country_code"]: c for c in body["data"]}
    assert countries["GH"] == {"id": 83, "name": "Ghana", "country_code": "GH", "currency_code": "GHS"}
    assert countries["ZM"] == {"id": 246, "name": "Zambia", "country_code": "ZM", "currency_code": "ZMW"}
    assert {"NG", "KE"} <= countries.keys()


def test_payment_lookup_has_the_contract_fields(api):
    data = payment(api, "VSC-GH-PARTIAL")
    assert data["reference"] == "VSC-GH-PARTIAL"
    assert data["amount"] == 180
    assert (data["currency"], data["status"], data["method"]) == ("GHS", "successful", "mobilemoney")
    assert (data["customer_first_name"], data["customer_last_name"]) == ("Kwame", "Boateng")
    assert data["phone_number"] == "233245550102"
    assert data["environment"] == "sandbox"
    assert data["created_at"].endswith("Z")
    assert isinstance(data["id"], int) and "@" in data["email"]
    [refund] = data["refunds"]
    assert refund["reference"] == "VRF-5eed00000001"
    assert (refund["status"], refund["amount"], refund["reason"]) == ("successful", 30, "Item out of stock")
    assert refund["completed_at"].endswith("Z") and refund["failure_reason"] is None


def test_unknown_payment_is_400(api):
    assert_error(api.get("/v1/payment/VSC-NOPE"), 400, NOT_FOUND)
    assert_error(api.get("/v1/payment/tr_demo_fresh"), 400, NOT_FOUND)


def test_seeded_failed_payment_reports_failed(api):
    assert payment(api, "VSC-ZM-FAILED")["status"] == "failed"


def test_accepted_refund_is_queued_and_listed(sandbox, api):
    response = api.post("/v1/payment/refunds/process", json=refund_body(amount=10.5))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["code"], body["message"]) == ("success", 200, "refund queued successfully")
    assert body["data"]["status"] == "processing"
    reference = body["data"]["reference"]
    assert reference.startswith("VRF-") and int(reference[4:], 16) >= 0
    [listed] = payment(api, "VSC-GH-FRESH")["refunds"]
    assert listed["reference"] == reference
    assert (listed["amount"], listed["reason"]) == (10.5, "Customer cancellation")
    assert listed["status"] in {"pending", "processing"}
    assert [r["refund_reference"] for r in sandbox.refunds() if r["payment_reference"] == "VSC-GH-FRESH"] == [
        reference
    ]


def test_webhook_url_may_be_absent_and_country_id_may_be_a_string(api):
    response = api.post(
        "/v1/payment/refunds/process", json=refund_body(webhook_url=..., country_id=str(GHANA))
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    [
        refund_body(amount="10"),
        refund_body(amount=True),
        refund_body(amount=...),
        refund_body(payment_reference=42),
        refund_body(country_id=None),
        refund_body(country_id=False),
        refund_body(transfer_to="bank_account"),
        refund_body(momo_phone_number=233245550101),
        refund_body(reason=None),
        refund_body(webhook_url=7),
        refund_body(currency="GHS"),
    ],
)
def test_malformed_bodies_are_invalid(api, body):
    assert_error(api.post("/v1/payment/refunds/process", json=body), 400, INVALID_BODY)


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"amount": NaN}', b""])
def test_non_object_bodies_are_invalid(api, content):
    response = api.post(
        "/v1/payment/refunds/process", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, INVALID_BODY)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Each body breaks its rule and every later one: the earliest rule must answer.
        (refund_body("VSC-NOPE", amount=-1, momo_phone_number="12", country_id=1), NOT_FOUND),
        (refund_body(amount=0, momo_phone_number="12", country_id=1), TOO_MUCH),
        (refund_body(amount=-5), TOO_MUCH),
        (refund_body(amount=250.01), TOO_MUCH),
        (refund_body(amount=1.005), TOO_MUCH),
        (refund_body("VSC-GH-FAILED", amount=1, momo_phone_number="12"), TOO_MUCH),
        (refund_body("VSC-GH-PARTIAL", amount=150.01), TOO_MUCH),
        (refund_body("VSC-GH-REFUNDED", amount=0.01), TOO_MUCH),
        (refund_body(momo_phone_number="12", country_id=1), BAD_PHONE),
        (refund_body(momo_phone_number="+233245550101"), BAD_PHONE),
        (refund_body(momo_phone_number="2340999993"), BAD_PHONE),
        (refund_body(momo_phone_number="233302123456"), BAD_PHONE),
        (refund_body("VSC-GH-LOWBAL", amount=25, country_id=1), BAD_COUNTRY),
        (refund_body("VSC-GH-LOWBAL", amount=25), NO_FUNDS),
        (
            refund_body("VSC-ZM-LOWBAL", amount=50.01, country_id=ZAMBIA, momo_phone_number="260965550105"),
            NO_FUNDS,
        ),
    ],
)
def test_refund_rules_apply_in_contract_order(sandbox, api, body, message):
    before = sandbox.refunds()
    assert_error(api.post("/v1/payment/refunds/process", json=body), 400, message)
    assert sandbox.refunds() == before


def test_partial_refunds_up_to_the_remaining_balance(api):
    # VSC-GH-PARTIAL: 180.00 paid, 30.00 already refunded.
    assert (
        api.post("/v1/payment/refunds/process", json=refund_body("VSC-GH-PARTIAL", amount=100)).status_code
        == 200
    )
    assert (
        api.post("/v1/payment/refunds/process", json=refund_body("VSC-GH-PARTIAL", amount=50)).status_code
        == 200
    )
    assert_error(
        api.post("/v1/payment/refunds/process", json=refund_body("VSC-GH-PARTIAL", amount=0.01)),
        400,
        TOO_MUCH,
    )
    assert sum(r["amount"] for r in payment(api, "VSC-GH-PARTIAL")["refunds"]) == 180


def test_low_balance_payment_draws_down_its_own_balance(api):
    # VSC-GH-LOWBAL: the merchant can cover 20.00 GHS for this payment.
    assert (
        api.post("/v1/payment/refunds/process", json=refund_body("VSC-GH-LOWBAL", amount=15)).status_code
        == 200
    )
    assert_error(
        api.post("/v1/payment/refunds/process", json=refund_body("VSC-GH-LOWBAL", amount=5.01)), 400, NO_FUNDS
    )
    assert (
        api.post("/v1/payment/refunds/process", json=refund_body("VSC-GH-LOWBAL", amount=5)).status_code
        == 200
    )


def test_zambian_payment_refunds_to_a_zambian_wallet(api):
    body = refund_body("VSC-ZM-FRESH", amount=499.99, country_id=ZAMBIA, momo_phone_number="260965550101")
    assert api.post("/v1/payment/refunds/process", json=body).status_code == 200
    assert payment(api, "VSC-ZM-FRESH")["refunds"][0]["amount"] == 499.99


def test_created_payment_is_served(sandbox, api):
    reference = sandbox.create_payment(
        "vesicash", 12.5, "GHS", "+233 24 123 4567", customer_name="Esi Quaye", status="pending", age_days=2
    )
    data = payment(api, reference)
    assert (data["amount"], data["status"], data["phone_number"]) == (12.5, "pending", "233241234567")
    assert (data["customer_first_name"], data["customer_last_name"]) == ("Esi", "Quaye")
    assert_error(
        api.post("/v1/payment/refunds/process", json=refund_body(reference, amount=1)), 400, TOO_MUCH
    )
