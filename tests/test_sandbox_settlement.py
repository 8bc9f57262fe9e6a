"""Refunds settle from the simulator clock; the destination phone's ending picks the outcome."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from refund_tui.sandbox.demo import (
    NOVASEND_API_CLIENT,
    NOVASEND_API_KEY,
    VESICASH_PUBLIC_KEY,
    VESICASH_SECRET_KEY,
)

#: This module's settlement unit: long enough that real time barely moves a refund along,
#: so every phase is reached with the control clock alone.
UNIT = 1.0
ENDINGS = [
    # ending, final (neutral and Novasend) status, failure reason
    ("0101", "completed", None),
    ("9901", "failed", "Recipient wallet not found"),
    ("9902", "failed", "Recipient wallet limit exceeded"),
    ("9903", "failed", "Mobile money operator timeout"),
    ("9904", "processing", None),
]
VESICASH_WORDS = {"completed": "successful"}


class Refunds:
    """Makes refunds on a simulator and reads back their current state, on either provider."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        keys = {"public-key": VESICASH_PUBLIC_KEY, "secret-key": VESICASH_SECRET_KEY}
        self.vesicash = httpx.Client(base_url=sandbox.vesicash_url, headers=keys)
        self.novasend = httpx.Client(
            base_url=sandbox.novasend_url, auth=(NOVASEND_API_KEY, NOVASEND_API_CLIENT)
        )

    def close(self) -> None:
        self.vesicash.close()
        self.novasend.close()

    def vesicash_refund(self, phone_digits: str) -> str:
        body = {
            "amount": 1,
            "payment_reference": "VSC-GH-FRESH",
            "country_id": 83,
            "transfer_to": "mobile_number",
            "momo_phone_number": phone_digits,
            "reason": "Customer cancellation",
        }
        response = self.vesicash.post("/v1/payment/refunds/process", json=body)
        assert response.status_code == 200, response.text
        return response.json()["data"]["reference"]

    def vesicash_state(self, reference: str) -> dict:
        data = self.vesicash.get("/v1/payment/VSC-GH-FRESH").json()["data"]
        return next(r for r in data["refunds"] if r["reference"] == reference)

    def new_payin(self, phone: str) -> str:
        return self.sandbox.create_payment("novasend", 5000, "XOF", phone)

    def novasend_refund(self, payin: str, amount: int = 5000) -> str:
        body = {"amount": amount, "reason": "Client cancellation", "externalReference": str(uuid.uuid4())}
        response = self.novasend.post(
            f"/v1/payin/{payin}/refund", json=body, headers={"X-Idempotency-Key": str(uuid.uuid4())}
        )
        assert response.status_code == 200, response.text
        return response.json()["reference"]

    def novasend_state(self, reference: str) -> dict:
        return self.novasend.get(f"/v1/payin/{reference}").json()


@pytest.fixture(scope="module")
def slow_refunds(run_sandbox) -> Iterator[Refunds]:
    with run_sandbox(settle_seconds=UNIT) as sandbox:
        refunds = Refunds(sandbox)
        yield refunds
        refunds.close()


@pytest.fixture
def refunds(slow_refunds: Refunds) -> Refunds:
    slow_refunds.sandbox.reset()
    return slow_refunds


@pytest.mark.parametrize(("ending", "final", "reason"), ENDINGS)
def test_vesicash_refund_moves_through_each_phase(refunds, ending, final, reason):
    reference = refunds.vesicash_refund("23324555" + ending)
    assert refunds.vesicash_state(reference)["status"] == "pending"
    refunds.sandbox.advance(1.2 * UNIT)
    assert refunds.vesicash_state(reference)["status"] == "processing"
    assert refunds.vesicash_state(reference)["completed_at"] is None
    refunds.sandbox.advance(2 * UNIT)
    state = refunds.vesicash_state(reference)
    assert state["status"] == VESICASH_WORDS.get(final, final)
    assert state["failure_reason"] == reason
    assert (state["completed_at"] is None) == (final == "processing")


@pytest.mark.parametrize(("ending", "final", "reason"), ENDINGS)
def test_novasend_refund_moves_through_each_phase(refunds, ending, final, reason):
    reference = refunds.novasend_refund(refunds.new_payin("+225075555" + ending))
    assert refunds.novasend_state(reference)["status"] == "pending"
    refunds.sandbox.advance(1.2 * UNIT)
    assert refunds.novasend_state(reference)["status"] == "processing"
    refunds.sandbox.advance(2 * UNIT)
    state = refunds.novasend_state(reference)
    assert (state["status"], state["failureReason"]) == (final, reason)
    transaction_words = {"completed": "success", "failed": "failed", "processing": "pending"}
    assert state["transaction"]["status"] == transaction_words[final]
    assert (state["transaction"]["processedAt"] is None) == (final == "processing")


def test_stuck_refund_never_settles(refunds):
    reference = refunds.novasend_refund(refunds.new_payin("+2250755559904"))
    refunds.sandbox.advance(30 * 86400)
    assert refunds.novasend_state(reference)["status"] == "processing"


def test_9905_completes_then_is_reversed_three_units_later(refunds):
    novasend = refunds.novasend_refund(refunds.new_payin("+2250755559905"))
    vesicash = refunds.vesicash_refund("233245559905")
    refunds.sandbox.advance(3.2 * UNIT)
    assert refunds.novasend_state(novasend)["status"] == "completed"
    assert refunds.vesicash_state(vesicash)["status"] == "successful"
    refunds.sandbox.advance(2.5 * UNIT)
    assert refunds.novasend_state(novasend)["status"] == "completed"
    refunds.sandbox.advance(1 * UNIT)
    state = refunds.novasend_state(novasend)
    assert (state["status"], state["failureReason"]) == ("reversed", "Reversed by operator")
    assert refunds.vesicash_state(vesicash)["status"] == "reversed"


def test_vesicash_outcome_follows_the_refund_phone_not_the_payment_phone(refunds):
    # VSC-GH-FRESH's customer phone ends 0101; this refund goes to a 9902 wallet.
    reference = refunds.vesicash_refund("233245559902")
    refunds.sandbox.advance(4 * UNIT)
    assert refunds.vesicash_state(reference)["failure_reason"] == "Recipient wallet limit exceeded"


def test_failed_refund_frees_the_balance_once_final(refunds):
    payin = refunds.new_payin("+2250755559901")
    refunds.novasend_refund(payin)
    body = {"amount": 5000, "reason": "again", "externalReference": "again"}
    early = refunds.novasend.post(
        f"/v1/payin/{payin}/refund", json=body, headers={"X-Idempotency-Key": "early"}
    )
    assert early.json()["code"] == "invalid_amount"
    refunds.sandbox.advance(4 * UNIT)
    later = refunds.novasend.post(
        f"/v1/payin/{payin}/refund", json=body, headers={"X-Idempotency-Key": "later"}
    )
    assert later.status_code == 200, later.text


def test_seeded_magic_payment_fails_as_documented(refunds):
    # tr_demo_nowallet carries yesterday's failed refund; a new one fails the same way.
    seeded = refunds.novasend_state("tr_demo_nowallet")["refunds"][0]
    assert (seeded["status"], seeded["failureReason"]) == ("failed", "Recipient wallet not found")
    reference = refunds.novasend_refund("tr_demo_nowallet", amount=10000)
    refunds.sandbox.advance(4 * UNIT)
    assert refunds.novasend_state(reference)["status"] == "failed"


def test_refunds_settle_as_real_time_passes(sandbox):
    refunds = Refunds(sandbox)
    try:
        reference = refunds.vesicash_refund("233245550101")
        time.sleep(4 * sandbox.settle_seconds)
        assert refunds.vesicash_state(reference)["status"] == "successful"
        [listed] = [r for r in sandbox.refunds() if r["refund_reference"] == reference]
    finally:
        refunds.close()
    assert listed == {
        "provider": "vesicash",
        "payment_reference": "VSC-GH-FRESH",
        "refund_reference": reference,
        "amount": 1,
        "currency": "GHS",
        "status": "completed",
    }
