"""The simulator's signed webhook notifications, caught over real HTTP by a capture receiver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from refund_tui.sandbox.demo import (
    NOVASEND_API_CLIENT,
    NOVASEND_API_KEY,
    NOVASEND_WEBHOOK_SECRET,
    VESICASH_PUBLIC_KEY,
    VESICASH_SECRET_KEY,
    VESICASH_WEBHOOK_SECRET,
)
from refund_tui.serving import BackgroundServer

VESICASH_KEYS = {"public-key": VESICASH_PUBLIC_KEY, "secret-key": VESICASH_SECRET_KEY}
NOVASEND_AUTH = (NOVASEND_API_KEY, NOVASEND_API_CLIENT)
#: How long any expected notification may take to arrive (it usually takes well under 1 s).
DEADLINE_SECONDS = 10.0
VESICASH_DATA_FIELDS = {
    "reference",
    "payment_reference",
    "status",
    "amount",
    "currency",
    "reason",
    "created_at",
    "completed_at",
    "failure_reason",
}


@dataclass(frozen=True)
class Captured:
    """One request the receiver got."""

    path: str
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        payload = self.json()
        return payload.get("event") or payload["type"]

    @property
    def refund_reference(self) -> str:
        return self.json()["data"]["reference"]


class Receiver:
    """Records every POST (headers and raw body); answers 200, or a chosen status N times.

    ``delay`` seconds pass between receiving a request and answering it.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self._delay = delay
        self._lock = threading.Lock()
        self._captured: list[Captured] = []
        self._answers: list[int] = []
        app = Starlette(routes=[Route("/{path:path}", self._capture, methods=["POST"])])
        self._server = BackgroundServer(app, name="capture receiver")

    def url(self, path: str = "/hooks") -> str:
        return self._server.url + path

    def answer_next(self, count: int, status_code: int) -> None:
        with self._lock:
            self._answers = [status_code] * count

    def captured(self) -> list[Captured]:
        with self._lock:
            return list(self._captured)

    def wait_for(self, count: int) -> list[Captured]:
        """The requests so far, once there are at least ``count``."""
        wait_until(lambda: len(self.captured()) >= count, f"{count} notification(s)")
        return self.captured()

    async def _capture(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self._captured.append(Captured(request.url.path, request.headers, body))
            status_code = self._answers.pop(0) if self._answers else 200
        await asyncio.sleep(self._delay)
        return Response(status_code=status_code)

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def wait_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def hmac_digest(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def vesicash_signature_ok(request: Captured, secret: str = VESICASH_WEBHOOK_SECRET) -> bool:
    return request.headers["X-Vesicash-Signature"] == hmac_digest(secret, request.body).hex()


def vesicash_refund(
    sandbox, phone: str = "233245550101", *, webhook_url: str | None = None, reason: str = "Damaged"
) -> str:
    """A 1.00 GHS refund of VSC-GH-FRESH to ``phone``; returns its reference."""
    body = {
        "amount": 1,
        "payment_reference": "VSC-GH-FRESH",
        "country_id": 83,
        "transfer_to": "mobile_number",
        "momo_phone_number": phone,
        "reason": reason,
    }
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    url = f"{sandbox.vesicash_url}/v1/payment/refunds/process"
    answer = httpx.post(url, json=body, headers=VESICASH_KEYS)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["reference"]


def novasend_refund(sandbox, *, reason: str = "Client cancellation", key: str = "k") -> str:
    """A 1,000 XOF refund of tr_demo_fresh; returns its reference."""
    answer = httpx.post(
        f"{sandbox.novasend_url}/v1/payin/tr_demo_fresh/refund",
        json={"amount": 1000, "reason": reason, "externalReference": key},
        headers={"X-Idempotency-Key": key},
        auth=NOVASEND_AUTH,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["reference"]


def vesicash_record(sandbox, reference: str) -> dict[str, Any]:
    """A refund as VSC-GH-FRESH's payment record shows it now."""
    payment = httpx.get(f"{sandbox.vesicash_url}/v1/payment/VSC-GH-FRESH", headers=VESICASH_KEYS).json()
    return next(r for r in payment["data"]["refunds"] if r["reference"] == reference)


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("233245550101", [("refund.completed", "successful", None)]),
        ("233245559901", [("refund.failed", "failed", "Recipient wallet not found")]),
        (
            "233245559905",
            [
                ("refund.completed", "successful", None),
                ("refund.reversed", "reversed", "Reversed by operator"),
            ],
        ),
    ],
)
def test_vesicash_notifies_each_outcome_signed(sandbox, receiver, phone, expected):
    sandbox.webhooks(vesicash_url=receiver.url())
    reference = vesicash_refund(sandbox, phone)
    got = receiver.wait_for(len(expected))
    outcomes = [(r.event, r.json()["data"]["status"], r.json()["data"]["failure_reason"]) for r in got]
    assert outcomes == expected
    for request in got:
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "refund-tui-sandbox"
        assert "X-Vesicash-Timestamp" not in request.headers
        assert vesicash_signature_ok(request)
        payload = request.json()
        assert request.body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        assert payload["data"].keys() == VESICASH_DATA_FIELDS
        assert payload["data"]["reference"] == reference
        assert (payload["data"]["payment_reference"], payload["data"]["currency"]) == ("VSC-GH-FRESH", "GHS")
        assert payload["data"]["completed_at"] is not None
    final = got[-1].json()["data"]
    assert final == vesicash_record(sandbox, reference) | {
        "payment_reference": "VSC-GH-FRESH",
        "currency": "GHS",
    }


def test_the_request_webhook_url_beats_the_default(sandbox, receiver):
    sandbox.webhooks(vesicash_url=receiver.url("/default"))
    own = vesicash_refund(sandbox, webhook_url=receiver.url("/own"))
    default = vesicash_refund(sandbox)
    got = receiver.wait_for(2)
    assert {r.refund_reference: r.path for r in got} == {own: "/own", default: "/default"}


def test_novasend_sends_every_step_signed_over_compact_json(sandbox, receiver):
    reason = "Remboursement : client mécontent ✓"
    sandbox.webhooks(novasend_url=receiver.url())
    reference = novasend_refund(sandbox, reason=reason)
    got = receiver.wait_for(2)
    assert [r.event for r in got] == ["refund.processing", "refund.completed"]
    for request in got:
        payload = request.json()
        assert re.fullmatch(r"evt_[a-z0-9]{24}", payload["id"])
        assert request.body == json.dumps(payload).encode()
        assert request.body.isascii() and b"\\u00e9" in request.body
        compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        signature = request.headers["X-Signature-Value"]
        assert signature != hmac_digest(NOVASEND_WEBHOOK_SECRET, request.body).hex()
        assert signature == hmac_digest(NOVASEND_WEBHOOK_SECRET, compact).hex()
        assert payload["data"]["reference"] == reference
        assert payload["data"]["reason"] == reason
        assert payload["data"]["status"] == payload["type"].removeprefix("refund.")
    assert got[0].json()["id"] != got[1].json()["id"]
    assert got[0].json()["data"]["transaction"]["processedAt"] is None
    lookup = httpx.get(f"{sandbox.novasend_url}/v1/payin/{reference}", auth=NOVASEND_AUTH).json()
    assert got[1].json()["data"] == lookup


@pytest.mark.parametrize(
    "signing",
    [
        {"signed": "timestamp.body"},
        {"encoding": "base64"},
        {"signed": "timestamp.body", "encoding": "base64"},
    ],
)
def test_vesicash_signing_options(sandbox, receiver, signing):
    config = sandbox.webhooks(vesicash_url=receiver.url(), vesicash_signing=signing)
    assert config["vesicash_signing"] == {"signed": "body", "encoding": "hex"} | signing
    sandbox.advance(86_400)  # the signed timestamp follows real time, not the simulator clock
    vesicash_refund(sandbox)
    (request,) = receiver.wait_for(1)
    message = request.body
    if signing.get("signed") == "timestamp.body":
        stamp = request.headers["X-Vesicash-Timestamp"]
        assert abs(int(stamp) - time.time()) < 600
        message = stamp.encode() + b"." + request.body
    else:
        assert "X-Vesicash-Timestamp" not in request.headers
    digest = hmac_digest(VESICASH_WEBHOOK_SECRET, message)
    encoded = base64.b64encode(digest).decode() if signing.get("encoding") == "base64" else digest.hex()
    assert request.headers["X-Vesicash-Signature"] == encoded


def test_a_configured_secret_signs(sandbox, receiver):
    sandbox.webhooks(vesicash_url=receiver.url(), vesicash_secret="whsec_merchant_own")
    vesicash_refund(sandbox)
    (request,) = receiver.wait_for(1)
    assert vesicash_signature_ok(request, "whsec_merchant_own")


def test_without_a_url_nothing_is_sent_and_nothing_is_kept_for_later(sandbox, receiver):
    unsent = vesicash_refund(sandbox)
    # A later refund with its own URL settles after the first: once it is notified, the
    # dispatcher has seen the first one final too, while no URL applied to it.
    marker = vesicash_refund(sandbox, webhook_url=receiver.url())
    receiver.wait_for(1)
    sandbox.webhooks(vesicash_url=receiver.url())
    last = vesicash_refund(sandbox)
    got = receiver.wait_for(2)
    assert [r.refund_reference for r in got] == [marker, last]
    assert unsent not in {d["refund_reference"] for d in sandbox.deliveries()}


def test_seeded_refunds_never_notify(sandbox, receiver):
    sandbox.webhooks(vesicash_url=receiver.url(), novasend_url=receiver.url())
    sandbox.advance(30 * 86_400)
    marker = vesicash_refund(sandbox, "233245559905")
    got = receiver.wait_for(2)
    assert {r.refund_reference for r in got} == {marker}
    assert {d["refund_reference"] for d in sandbox.deliveries()} == {marker}


def test_failed_deliveries_are_retried_until_one_succeeds(sandbox, receiver):
    receiver.answer_next(2, 500)
    sandbox.webhooks(vesicash_url=receiver.url())
    vesicash_refund(sandbox)
    got = receiver.wait_for(3)
    assert len({r.body for r in got}) == 1
    assert all(vesicash_signature_ok(r) for r in got)
    wait_until(lambda: len(sandbox.deliveries()) == 3, "three logged attempts")
    log = sandbox.deliveries()
    assert [(d["attempt"], d["status_code"], d["error"]) for d in log] == [
        (1, 500, None),
        (2, 500, None),
        (3, 200, None),
    ]
    assert len({d["event_id"] for d in log}) == 1


def test_a_delivery_is_given_up_after_six_attempts(sandbox, receiver):
    receiver.answer_next(1000, 503)
    sandbox.webhooks(vesicash_url=receiver.url())
    refused = vesicash_refund(sandbox)
    wait_until(lambda: len(sandbox.deliveries()) == 6, "six logged attempts")
    receiver.answer_next(0, 200)
    sandbox.advance(3600)  # a seventh attempt, had there been one, would now be due at once
    marker = vesicash_refund(sandbox)
    wait_until(lambda: marker in {r.refund_reference for r in receiver.captured()}, "the marker")
    assert len([r for r in receiver.captured() if r.refund_reference == refused]) == 6
    log = [d for d in sandbox.deliveries() if d["refund_reference"] == refused]
    assert [(d["attempt"], d["status_code"]) for d in log] == [(n, 503) for n in range(1, 7)]


def test_an_unreachable_receiver_is_logged_and_retried(sandbox):
    with Receiver() as gone:
        url = gone.url()
    sandbox.webhooks(vesicash_url=url)
    vesicash_refund(sandbox)
    wait_until(lambda: len(sandbox.deliveries()) >= 2, "two logged attempts")
    first, second = sandbox.deliveries()[:2]
    assert (first["attempt"], second["attempt"]) == (1, 2)
    assert first["status_code"] is None and "ConnectError" in first["error"]


def test_duplicate_next_sends_the_next_delivery_twice_byte_for_byte(sandbox, receiver):
    assert sandbox.webhooks(vesicash_url=receiver.url(), duplicate_next=1)["duplicate_next"] == 1
    vesicash_refund(sandbox, "233245559905")
    got = receiver.wait_for(3)
    assert [r.event for r in got] == ["refund.completed", "refund.completed", "refund.reversed"]
    assert got[0].body == got[1].body
    assert got[0].headers.raw == got[1].headers.raw
    wait_until(lambda: len(sandbox.deliveries()) == 3, "three logged attempts")
    assert [(d["attempt"], d["duplicate"]) for d in sandbox.deliveries()] == [
        (1, False),
        (1, True),
        (1, False),
    ]
    assert sandbox.webhooks()["duplicate_next"] == 0


def test_reorder_next_sends_a_refunds_notifications_newest_first(sandbox, receiver):
    sandbox.webhooks(novasend_url=receiver.url(), reorder_next=1)
    reordered = novasend_refund(sandbox, key="first")
    got = receiver.wait_for(2)
    assert [(r.refund_reference, r.event) for r in got] == [
        (reordered, "refund.completed"),
        (reordered, "refund.processing"),
    ]
    in_order = novasend_refund(sandbox, key="second")
    got = receiver.wait_for(4)
    assert [(r.refund_reference, r.event) for r in got[2:]] == [
        (in_order, "refund.processing"),
        (in_order, "refund.completed"),
    ]


def test_tamper_next_spoils_one_signature_and_the_retry_is_right(sandbox, receiver):
    receiver.answer_next(1, 401)
    sandbox.webhooks(vesicash_url=receiver.url(), tamper_next=2)
    vesicash_refund(sandbox)
    tampered, retried = receiver.wait_for(2)
    assert tampered.body == retried.body
    assert not vesicash_signature_ok(tampered)
    assert vesicash_signature_ok(retried)
    wait_until(lambda: len(sandbox.deliveries()) == 2, "two logged attempts")
    assert [(d["status_code"], d["tampered"]) for d in sandbox.deliveries()] == [(401, True), (200, False)]
    assert sandbox.webhooks()["tamper_next"] == 1  # left for the next notification


def test_a_later_notification_waits_while_an_earlier_one_is_retried(sandbox, receiver):
    receiver.answer_next(3, 500)  # processing is retried past the moment the refund completes
    sandbox.webhooks(novasend_url=receiver.url())
    novasend_refund(sandbox)
    got = receiver.wait_for(5)
    assert [r.event for r in got] == ["refund.processing"] * 4 + ["refund.completed"]


DEFAULT_CONFIG = {
    "vesicash_url": None,
    "novasend_url": None,
    "vesicash_secret": VESICASH_WEBHOOK_SECRET,
    "novasend_secret": NOVASEND_WEBHOOK_SECRET,
    "vesicash_signing": {"signed": "body", "encoding": "hex"},
    "duplicate_next": 0,
    "reorder_next": 0,
    "tamper_next": 0,
}


def test_configuration_round_trip_and_reset(sandbox):
    assert httpx.get(f"{sandbox.url}/_sandbox/webhooks").json() == DEFAULT_CONFIG | {"deliveries": []}
    changed = sandbox.webhooks(
        vesicash_url="https://merchant.example/hooks/vesicash",
        novasend_url="http://127.0.0.1:9/novasend",
        novasend_secret="nvs_own",
        tamper_next=2,
    )
    assert changed == DEFAULT_CONFIG | {
        "vesicash_url": "https://merchant.example/hooks/vesicash",
        "novasend_url": "http://127.0.0.1:9/novasend",
        "novasend_secret": "nvs_own",
        "tamper_next": 2,
    }
    index = httpx.get(f"{sandbox.url}/_sandbox/").json()
    assert index["novasend"]["webhook_secret"] == "nvs_own"
    assert index["vesicash"]["webhook_secret"] == VESICASH_WEBHOOK_SECRET
    cleared = sandbox.webhooks(novasend_url=None, novasend_secret=None)
    assert (cleared["novasend_url"], cleared["novasend_secret"]) == (None, NOVASEND_WEBHOOK_SECRET)
    assert cleared["vesicash_url"] == "https://merchant.example/hooks/vesicash"
    sandbox.reset()
    assert sandbox.webhooks() == DEFAULT_CONFIG


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"webhook_url": "http://a.example"}, "unknown field(s): webhook_url"),
        ({"vesicash_url": "ftp://a.example/x"}, "vesicash_url must be an http:// or https:// URL"),
        ({"novasend_url": "http://"}, "novasend_url must be an http:// or https:// URL"),
        ({"novasend_url": "a.example/hooks"}, "novasend_url must be an http:// or https:// URL"),
        ({"vesicash_url": 42}, "vesicash_url must be an http:// or https:// URL"),
        ({"vesicash_secret": ""}, "vesicash_secret must be a non-empty string"),
        ({"novasend_secret": 7}, "novasend_secret must be a non-empty string"),
        ({"duplicate_next": -1}, "duplicate_next must be a whole number, 0 or more"),
        ({"reorder_next": 1.5}, "reorder_next must be a whole number, 0 or more"),
        ({"tamper_next": True}, "tamper_next must be a whole number, 0 or more"),
        ({"tamper_next": None}, "tamper_next must be a whole number, 0 or more"),
        ({"vesicash_signing": {"signed": "body.timestamp"}}, "vesicash_signing.signed must be one of"),
        ({"vesicash_signing": {"encoding": "hex64"}}, "vesicash_signing.encoding must be one of"),
        ({"vesicash_signing": {"digest": "sha1"}}, "vesicash_signing must be an object"),
        ({"vesicash_signing": None}, "vesicash_signing must be an object"),
        ([], "the body must be a JSON object"),
    ],
)
def test_configuration_is_checked_strictly(sandbox, body, message):
    answer = httpx.post(f"{sandbox.url}/_sandbox/webhooks", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(message)
    assert sandbox.webhooks() == DEFAULT_CONFIG


def test_simulators_sharing_a_state_file_deliver_each_notification_once(run_sandbox, tmp_path: Path):
    state_path = tmp_path / "state.json"
    with (
        Receiver(delay=0.2) as receiver,  # each delivery is in flight across many dispatch rounds
        run_sandbox(state_path=state_path) as first,
        run_sandbox(state_path=state_path) as second,
    ):
        first.webhooks(novasend_url=receiver.url(), vesicash_url=receiver.url())
        novasend_refund(second, key="shared-1")
        vesicash_refund(first, "233245559905")
        receiver.wait_for(4)
        # Anything sent twice would have gone out before this later refund's notification.
        marker = vesicash_refund(second)
        wait_until(lambda: marker in {r.refund_reference for r in receiver.captured()}, "the marker")
        got = receiver.captured()
        identities = [(r.refund_reference, r.event) for r in got]
        assert len(got) == 5 and len(set(identities)) == 5
        wait_until(lambda: len(second.deliveries()) == 5, "five logged attempts")
        assert len({d["event_id"] for d in first.deliveries()}) == 5
