"""Faults a tester can inject: server errors, dropped connections and latency."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from refund_tui.sandbox.demo import (
    NOVASEND_API_CLIENT,
    NOVASEND_API_KEY,
    VESICASH_PUBLIC_KEY,
    VESICASH_SECRET_KEY,
)

VESICASH_KEYS = {"public-key": VESICASH_PUBLIC_KEY, "secret-key": VESICASH_SECRET_KEY}
VESICASH_REFUND = {
    "amount": 5,
    "payment_reference": "VSC-GH-FRESH",
    "country_id": 83,
    "transfer_to": "mobile_number",
    "momo_phone_number": "233245550101",
    "reason": "Customer cancellation",
}
NOVASEND_REFUND = {"amount": 500, "reason": "Client cancellation", "externalReference": "ext-1"}


@pytest.fixture(scope="module")
def clients(sandbox_session) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        httpx.Client(base_url=sandbox_session.vesicash_url, headers=VESICASH_KEYS) as vesicash,
        httpx.Client(
            base_url=sandbox_session.novasend_url, auth=(NOVASEND_API_KEY, NOVASEND_API_CLIENT)
        ) as novasend,
    ):
        yield vesicash, novasend


@pytest.fixture
def vesicash(sandbox, clients) -> httpx.Client:
    return clients[0]


@pytest.fixture
def novasend(sandbox, clients) -> httpx.Client:
    return clients[1]


def novasend_refund(client: httpx.Client, key: str = "key-1") -> httpx.Response:
    return client.post(
        "/v1/payin/tr_demo_fresh/refund", json=NOVASEND_REFUND, headers={"X-Idempotency-Key": key}
    )


def executed(sandbox, reference: str) -> list[dict]:
    return [r for r in sandbox.refunds() if r["payment_reference"] == reference]


def test_fail_next_answers_500_then_serves_normally(sandbox, vesicash, novasend):
    assert sandbox.faults(fail_next=3)["fail_next"] == 3
    failed = vesicash.get("/v1/payment/VSC-GH-FRESH")
    assert failed.status_code == 500
    assert failed.json() == {"status": "error", "code": 500, "message": "Internal Server Error", "data": None}
    failed = novasend.get("/v1/payin/tr_demo_fresh")
    assert failed.status_code == 500
    assert failed.json() == {
        "code": "internal_server_error",
        "message": "Internal Server Error",
        "statusCode": 500,
    }
    # Before doing anything: not even the credentials are checked.
    assert httpx.get(f"{sandbox.vesicash_url}/v1/countries").status_code == 500
    assert vesicash.get("/v1/payment/VSC-GH-FRESH").status_code == 200
    assert sandbox.faults()["fail_next"] == 0


def test_failed_refund_request_executes_nothing_and_stores_no_answer(sandbox, vesicash, novasend):
    sandbox.faults(fail_next=2)
    assert vesicash.post("/v1/payment/refunds/process", json=VESICASH_REFUND).status_code == 500
    assert novasend_refund(novasend).status_code == 500
    assert executed(sandbox, "VSC-GH-FRESH") == executed(sandbox, "tr_demo_fresh") == []
    retried = novasend_refund(novasend)
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert len(executed(sandbox, "tr_demo_fresh")) == 1


def test_fail_refunds_next_fails_only_refund_requests(sandbox, vesicash, novasend):
    sandbox.faults(fail_refunds_next=2)
    assert vesicash.get("/v1/payment/VSC-GH-FRESH").status_code == 200
    assert novasend.get("/v1/payin/tr_demo_fresh").status_code == 200
    assert vesicash.post("/v1/payment/refunds/process", json=VESICASH_REFUND).status_code == 500
    assert novasend_refund(novasend).status_code == 500
    assert executed(sandbox, "VSC-GH-FRESH") == executed(sandbox, "tr_demo_fresh") == []
    assert sandbox.faults()["fail_refunds_next"] == 0
    assert novasend_refund(novasend).status_code == 200


def test_control_endpoints_are_not_failed(sandbox):
    sandbox.faults(fail_next=1)
    assert sandbox.refunds()
    assert sandbox.faults()["fail_next"] == 1


def test_dropped_vesicash_refund_is_committed_but_unanswered(sandbox, vesicash, caplog):
    caplog.set_level(logging.ERROR)
    sandbox.faults(drop_next=1)
    assert vesicash.get("/v1/payment/VSC-GH-FRESH").status_code == 200  # lookups are not dropped
    with pytest.raises(httpx.RemoteProtocolError):
        vesicash.post("/v1/payment/refunds/process", json=VESICASH_REFUND)
    [committed] = executed(sandbox, "VSC-GH-FRESH")
    assert committed["amount"] == 5
    assert vesicash.post("/v1/payment/refunds/process", json=VESICASH_REFUND).status_code == 200
    assert len(executed(sandbox, "VSC-GH-FRESH")) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], (
        "a deliberate drop was logged as an error"
    )


def test_dropped_novasend_refund_is_stored_under_its_key(sandbox, novasend):
    sandbox.faults(drop_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        novasend_refund(novasend)
    [committed] = executed(sandbox, "tr_demo_fresh")
    replay = novasend_refund(novasend)
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["reference"] == committed["refund_reference"]
    assert len(executed(sandbox, "tr_demo_fresh")) == 1


def test_latency_delays_provider_requests_only(sandbox, vesicash):
    sandbox.faults(latency_ms=250)
    started = time.perf_counter()
    assert vesicash.get("/v1/payment/VSC-GH-FRESH").status_code == 200
    assert time.perf_counter() - started >= 0.25
    started = time.perf_counter()
    sandbox.refunds()
    assert time.perf_counter() - started < 0.25
    sandbox.faults(latency_ms=0)
    started = time.perf_counter()
    vesicash.get("/v1/payment/VSC-GH-FRESH")
    assert time.perf_counter() - started < 0.25


def test_client_timeout_under_latency_leaves_an_executed_refund(sandbox, novasend):
    sandbox.faults(latency_ms=300)
    with pytest.raises(httpx.ReadTimeout):
        novasend.post(
            "/v1/payin/tr_demo_fresh/refund",
            json=NOVASEND_REFUND,
            headers={"X-Idempotency-Key": "slow"},
            timeout=0.1,
        )
    time.sleep(0.4)
    assert len(executed(sandbox, "tr_demo_fresh")) == 1
    sandbox.faults(latency_ms=0)
    replay = novasend_refund(novasend, key="slow")
    assert replay.headers["Idempotent-Replayed"] == "true"
