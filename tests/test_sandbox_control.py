"""The control endpoints under /_sandbox/: discovery, payments, faults, clock and reset."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from refund_tui.sandbox.demo import VESICASH_PUBLIC_KEY, VESICASH_SECRET_KEY

VESICASH_KEYS = {"public-key": VESICASH_PUBLIC_KEY, "secret-key": VESICASH_SECRET_KEY}


@pytest.fixture(scope="module")
def web() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def control(web: httpx.Client, sandbox, path: str, body: object) -> httpx.Response:
    return web.post(f"{sandbox.url}/_sandbox{path}", json=body)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_index_gives_base_urls_and_demo_credentials(web, sandbox):
    body = web.get(f"{sandbox.url}/_sandbox/").json()
    assert body == {
        "vesicash": {
            "base_url": sandbox.vesicash_url,
            "public_key": "vsc_pub_DEMO_not_a_real_key",
            "secret_key": "vsc_sec_DEMO_not_a_real_key",
            "webhook_secret": "vsc_whsec_DEMO_not_a_real_secret",
        },
        "novasend": {
            "base_url": sandbox.novasend_url,
            "api_key": "nvs_DEMO_api_key",
            "api_client": "nvs_DEMO_client",
            "webhook_secret": "nvs_whsec_DEMO_not_a_real_secret",
        },
    }


def test_index_urls_follow_the_request_host(web, sandbox):
    port = sandbox.url.rsplit(":", 1)[1]
    body = web.get(f"http://localhost:{port}/_sandbox/").json()
    assert body["novasend"]["base_url"] == f"http://localhost:{port}/novasend"


def test_root_leads_to_the_control_index(web, sandbox):
    response = web.get(sandbox.url + "/", follow_redirects=True)
    assert response.json()["vesicash"]["base_url"] == sandbox.vesicash_url


def test_created_payment_defaults(web, sandbox):
    reference = sandbox.create_payment("novasend", 1500, "XOF", "2250701234567")
    assert reference.startswith("tr_")
    payin = web.get(
        f"{sandbox.novasend_url}/v1/payin/{reference}", auth=("nvs_DEMO_api_key", "nvs_DEMO_client")
    ).json()
    assert (payin["status"], payin["amount"], payin["currency"]) == ("success", 1500, "XOF")
    assert payin["customer"] == {"name": "Demo Customer", "phoneNumber": "+2250701234567"}
    assert abs(parse_iso(payin["createdAt"]) - parse_iso(sandbox.advance(0))) < timedelta(minutes=1)


def test_created_payment_with_every_option(web, sandbox):
    reference = sandbox.create_payment(
        "vesicash",
        99.99,
        "ZMW",
        "+260 96 883 2801",
        status="successful",
        age_days=3,
        customer_name="Chilufya Mwansa",
        merchant_balance=10,
    )
    assert reference.startswith("VSC-")
    data = web.get(f"{sandbox.vesicash_url}/v1/payment/{reference}", headers=VESICASH_KEYS).json()["data"]
    assert (data["amount"], data["currency"], data["phone_number"]) == (99.99, "ZMW", "260968832801")
    age = parse_iso(sandbox.advance(0)) - parse_iso(data["created_at"])
    assert timedelta(days=3) <= age < timedelta(days=3, minutes=1)
    body = {
        "amount": 10.01,
        "payment_reference": reference,
        "country_id": 246,
        "transfer_to": "mobile_number",
        "momo_phone_number": "260968832801",
        "reason": "r",
    }
    refused = web.post(f"{sandbox.vesicash_url}/v1/payment/refunds/process", json=body, headers=VESICASH_KEYS)
    assert refused.json()["message"] == "Insufficient funds or wallet error preventing refund processing"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"provider": "mpesa"}, "provider must be 'vesicash' or 'novasend'"),
        ({"currency": "GHS"}, "currency must be one of XAF, XOF for novasend"),
        ({"currency": ["XOF"]}, "currency must be one of XAF, XOF for novasend"),
        ({"amount": "1500"}, "amount must be a number"),
        ({"amount": 0}, "amount must be more than zero"),
        ({"amount": 10.5}, "amount: XOF has no decimals"),
        ({"phone": "+22512345678"}, "is not a valid mobile number"),
        ({"phone": 2250701234567}, "is not a valid mobile number"),
        ({"status": "successfull"}, "status must be one of"),
        ({"age_days": -1}, "age_days must be a number of days from 0 to 3650"),
        ({"age_days": 1e9}, "age_days must be a number of days from 0 to 3650"),
        ({"amount": 1e300}, "amount must be at most 1,000,000,000"),
        ({"customer_name": " "}, "customer_name must be a non-empty string"),
        ({"merchant_balance": -1}, "merchant_balance must be 0 or more"),
        ({"merchant_balance": None}, "merchant_balance must be a number"),
        ({"colour": "red"}, "unknown field(s): colour"),
    ],
)
def test_invalid_payment_is_refused_with_a_reason(web, sandbox, change, message):
    body = {"provider": "novasend", "amount": 1500, "currency": "XOF", "phone": "+2250701234567", **change}
    response = control(web, sandbox, "/payments", body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_expired_is_a_novasend_status_only(web, sandbox):
    body = {
        "provider": "vesicash",
        "amount": 10,
        "currency": "GHS",
        "phone": "+233241234567",
        "status": "expired",
    }
    assert control(web, sandbox, "/payments", body).status_code == 400
    body.update(provider="novasend", currency="XOF", phone="+2250701234567")
    assert control(web, sandbox, "/payments", body).status_code == 200


@pytest.mark.parametrize("path", ["/payments", "/faults", "/clock"])
def test_non_object_bodies_are_refused(web, sandbox, path):
    response = web.post(f"{sandbox.url}/_sandbox{path}", content=b"[1]")
    assert response.status_code == 400
    assert response.json() == {"error": "the body must be a JSON object"}


NO_FAULTS = {"latency_ms": 0, "fail_next": 0, "fail_refunds_next": 0, "drop_next": 0, "hold_refund_ms": 0}


def test_faults_update_only_what_is_given(sandbox):
    assert sandbox.faults() == NO_FAULTS
    sandbox.faults(latency_ms=5, drop_next=2)
    assert sandbox.faults(fail_next=1) == {**NO_FAULTS, "latency_ms": 5, "fail_next": 1, "drop_next": 2}


@pytest.mark.parametrize(
    "body",
    [{"fail_next": -1}, {"drop_next": 1.5}, {"latency_ms": True}, {"latency": 5}, {"hold_refund_ms": -1}],
)
def test_invalid_faults_are_refused(web, sandbox, body):
    response = control(web, sandbox, "/faults", body)
    assert response.status_code == 400
    assert sandbox.faults() == NO_FAULTS


def test_clock_advances(sandbox):
    before = parse_iso(sandbox.advance(0))
    after = parse_iso(sandbox.advance(3600))
    assert timedelta(hours=1) <= after - before < timedelta(hours=1, seconds=5)


@pytest.mark.parametrize("body", [{"advance_seconds": -1}, {"advance_seconds": "60"}, {}])
def test_clock_refuses_bad_advances(web, sandbox, body):
    response = control(web, sandbox, "/clock", body)
    assert response.status_code == 400
    assert "advance_seconds" in response.json()["error"]


def test_clock_cannot_run_off_the_calendar(web, sandbox):
    response = control(web, sandbox, "/clock", {"advance_seconds": 1e12})
    assert response.status_code == 400
    assert "at most 100 years" in response.json()["error"]
    assert web.get(f"{sandbox.url}/_sandbox/refunds").status_code == 200


def test_refund_listing_starts_with_the_seeded_refunds(sandbox):
    listed = {(r["provider"], r["payment_reference"], r["status"]) for r in sandbox.refunds()}
    assert ("vesicash", "VSC-GH-PARTIAL", "completed") in listed
    assert ("vesicash", "VSC-GH-NOWALLET", "failed") in listed
    assert ("novasend", "tr_demo_refunded", "completed") in listed


def test_reset_restores_the_seeded_world(web, sandbox):
    seeded = sandbox.refunds()
    reference = sandbox.create_payment("novasend", 1500, "XOF", "+2250701234567")
    web.post(
        f"{sandbox.novasend_url}/v1/payin/{reference}/refund",
        json={"amount": 1, "reason": "r", "externalReference": "e"},
        headers={"X-Idempotency-Key": "k"},
        auth=("nvs_DEMO_api_key", "nvs_DEMO_client"),
    )
    sandbox.faults(latency_ms=1, fail_next=5)
    far = parse_iso(sandbox.advance(86400))
    sandbox.reset()
    assert sandbox.faults() == NO_FAULTS
    assert parse_iso(sandbox.advance(0)) < far - timedelta(hours=23)
    assert [r["refund_reference"] for r in sandbox.refunds()] == [r["refund_reference"] for r in seeded]
    gone = web.get(
        f"{sandbox.novasend_url}/v1/payin/{reference}", auth=("nvs_DEMO_api_key", "nvs_DEMO_client")
    )
    assert gone.status_code == 404


def test_a_duplicated_refund_is_a_second_execution_with_the_same_tag(web, sandbox):
    copy = control(web, sandbox, "/refunds/rf_demo_partial_1/duplicate", {}).json()
    record = web.get(f"{sandbox.novasend_url}/v1/payin/tr_demo_partial", auth=("nvs_DEMO_api_key", "nvs_DEMO_client")).json()

    first, second = record["refunds"]
    assert second["reference"] == copy["refund_reference"] != first["reference"]
    assert second["externalReference"] == first["externalReference"] == "demo-partial-1"
    assert (second["amount"], second["status"]) == (5000, "pending")  # executed just now


def test_an_amended_refund_shows_its_new_status_and_amount_from_now_on(web, sandbox):
    amended = control(web, sandbox, "/refunds/VRF-5eed00000001/amend",
                      {"status": "reversed", "failure_reason": "Charged back", "amount": 12.5}).json()  # fmt: skip
    record = web.get(f"{sandbox.vesicash_url}/v1/payment/VSC-GH-PARTIAL", headers=VESICASH_KEYS).json()

    assert (amended["status"], amended["amount"]) == ("reversed", 12.5)
    [refund] = record["data"]["refunds"]
    assert (refund["status"], refund["amount"], refund["failure_reason"]) == ("reversed", 12.5, "Charged back")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/refunds/VRF-nope/amend", {"status": "failed"}, "no refund 'VRF-nope'"),
        ("/refunds/VRF-5eed00000001/amend", {"status": "unknown"}, "status must be one of"),
        ("/refunds/VRF-5eed00000001/amend", {"amount": 1.005}, "amount: GHS allows at most 2 decimals"),
        ("/refunds/VRF-5eed00000001/amend", {"colour": "red"}, "unknown field(s): colour"),
        ("/refunds/VRF-5eed00000001/duplicate", {"twice": True}, "unknown field(s): twice"),
    ],
)
def test_refund_changes_are_checked(web, sandbox, path, body, message):
    answer = control(web, sandbox, path, body)

    assert answer.status_code == 400 and message in answer.json()["error"]
