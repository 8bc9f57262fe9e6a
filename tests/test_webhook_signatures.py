"""Webhook signature verification: every scheme the settings allow, and every way to fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refund_tui.core.secret import Secret
from refund_tui.core.webhooks import (
    NOVASEND_SCHEME,
    VESICASH_SCHEME,
    DigestEncoding,
    SignatureRejected,
    SignedContent,
    sign,
    verify,
)

SECRET = Secret("whsec_test_not_real")
NOW = 1_790_000_000
BODY = b'{"event":"refund.completed","data":{"reference":"VRF-1","status":"successful"}}'


def hex_hmac(message: bytes, secret: str = SECRET.reveal()) -> str:
    """Computed here independently of the module under test."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def test_vesicash_default_is_hex_hmac_of_the_raw_body_in_its_header():
    verify(VESICASH_SCHEME, SECRET, {"X-Vesicash-Signature": hex_hmac(BODY)}, BODY, now=NOW)
    assert sign(VESICASH_SCHEME, SECRET, BODY) == hex_hmac(BODY)


def test_a_sha256_prefix_and_upper_case_hex_are_accepted():
    value = "sha256=" + hex_hmac(BODY).upper()
    verify(VESICASH_SCHEME, SECRET, {"X-Vesicash-Signature": value}, BODY, now=NOW)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "header is missing"),
        ({"X-Vesicash-Signature": "  "}, "header is missing"),
        ({"X-Vesicash-Signature": "not-hex"}, "not a hex digest"),
        ({"X-Vesicash-Signature": hex_hmac(BODY, "another secret")}, "does not match"),
        ({"X-Vesicash-Signature": hex_hmac(BODY)[:-2]}, "does not match"),
        ({"X-Signature-Value": hex_hmac(BODY)}, "header is missing"),
    ],
)
def test_vesicash_refusals_say_why(headers, reason):
    with pytest.raises(SignatureRejected, match=reason):
        verify(VESICASH_SCHEME, SECRET, headers, BODY, now=NOW)


def test_a_tampered_body_is_refused():
    tampered = BODY.replace(b"successful", b"failed")
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(VESICASH_SCHEME, SECRET, {"X-Vesicash-Signature": hex_hmac(BODY)}, tampered, now=NOW)


def test_refusals_never_quote_the_secret_or_the_signature():
    signature = hex_hmac(BODY, "another secret")
    with pytest.raises(SignatureRejected) as caught:
        verify(VESICASH_SCHEME, SECRET, {"X-Vesicash-Signature": signature}, BODY, now=NOW)
    assert SECRET.reveal() not in str(caught.value)
    assert signature not in str(caught.value)


TIMESTAMPED = replace(VESICASH_SCHEME, signed=SignedContent.TIMESTAMP_BODY)


def test_timestamped_scheme_signs_timestamp_dot_body():
    headers = {
        "X-Vesicash-Signature": hex_hmac(f"{NOW}.".encode() + BODY),
        "X-Vesicash-Timestamp": str(NOW),
    }
    verify(TIMESTAMPED, SECRET, headers, BODY, now=NOW + 299)
    assert sign(TIMESTAMPED, SECRET, BODY, NOW) == headers["X-Vesicash-Signature"]


@pytest.mark.parametrize("skew", [-301, 301, 86_400])
def test_timestamped_scheme_refuses_a_timestamp_outside_the_tolerance(skew):
    headers = {
        "X-Vesicash-Signature": hex_hmac(f"{NOW}.".encode() + BODY),
        "X-Vesicash-Timestamp": str(NOW),
    }
    with pytest.raises(SignatureRejected, match="replay"):
        verify(TIMESTAMPED, SECRET, headers, BODY, now=NOW + skew)


def test_timestamped_scheme_refuses_a_changed_timestamp_even_within_tolerance():
    headers = {
        "X-Vesicash-Signature": hex_hmac(f"{NOW}.".encode() + BODY),
        "X-Vesicash-Timestamp": str(NOW + 5),
    }
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(TIMESTAMPED, SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("value", ["", "yesterday", "-5", "1.5", "9" * 5000])
def test_timestamped_scheme_needs_unix_seconds(value):
    headers = {"X-Vesicash-Signature": hex_hmac(BODY), "X-Vesicash-Timestamp": value}
    with pytest.raises(SignatureRejected, match="Unix seconds"):
        verify(TIMESTAMPED, SECRET, headers, BODY, now=NOW)


def test_base64_encoding_setting():
    scheme = replace(VESICASH_SCHEME, encoding=DigestEncoding.BASE64, tolerance=timedelta(seconds=1))
    digest = hmac.new(SECRET.reveal().encode(), BODY, hashlib.sha256).digest()
    verify(scheme, SECRET, {"X-Vesicash-Signature": base64.b64encode(digest).decode()}, BODY, now=NOW)
    with pytest.raises(SignatureRejected, match="base64"):
        verify(scheme, SECRET, {"X-Vesicash-Signature": "***"}, BODY, now=NOW)
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(scheme, SECRET, {"X-Vesicash-Signature": digest.hex()}, BODY, now=NOW)


NOVASEND_PAYLOAD = {
    "id": "evt_1",
    "type": "refund.completed",
    "data": {"reference": "rf_1", "reason": "Remboursement – client annulé", "amount": 500},
}


def test_novasend_accepts_a_signature_of_the_raw_body():
    body = json.dumps(NOVASEND_PAYLOAD).encode()
    verify(NOVASEND_SCHEME, SECRET, {"X-Signature-Value": hex_hmac(body)}, body, now=NOW)


def test_novasend_falls_back_to_the_compact_reserialisation_its_sample_signs():
    body = json.dumps(NOVASEND_PAYLOAD).encode()  # spaces, non-ASCII escaped
    compact = json.dumps(NOVASEND_PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()
    assert body != compact
    verify(NOVASEND_SCHEME, SECRET, {"X-Signature-Value": hex_hmac(compact)}, body, now=NOW)
    # Vesicash's scheme has no such fallback.
    with pytest.raises(SignatureRejected):
        verify(VESICASH_SCHEME, SECRET, {"X-Vesicash-Signature": hex_hmac(compact)}, body, now=NOW)


def test_novasend_fallback_does_not_accept_a_changed_payload():
    body = json.dumps({**NOVASEND_PAYLOAD, "type": "refund.failed"}).encode()
    compact = json.dumps(NOVASEND_PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(NOVASEND_SCHEME, SECRET, {"X-Signature-Value": hex_hmac(compact)}, body, now=NOW)


def test_novasend_fallback_survives_a_body_nested_too_deeply_to_parse():
    body = b"[" * 30_000 + b"]" * 30_000
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(NOVASEND_SCHEME, SECRET, {"X-Signature-Value": hex_hmac(b"[]")}, body, now=NOW)
    verify(NOVASEND_SCHEME, SECRET, {"X-Signature-Value": hex_hmac(body)}, body, now=NOW)


def test_novasend_non_json_body_is_only_checked_raw():
    body = b"not json at all"
    verify(NOVASEND_SCHEME, SECRET, {"X-Signature-Value": hex_hmac(body)}, body, now=NOW)
    with pytest.raises(SignatureRejected):
        verify(NOVASEND_SCHEME, SECRET, {"X-Signature-Value": hex_hmac(b"other")}, body, now=NOW)


@given(body=st.binary(max_size=512), flip=st.integers(min_value=0, max_value=511))
def test_any_body_verifies_and_any_changed_byte_is_refused(body, flip):
    headers = {"X-Vesicash-Signature": sign(VESICASH_SCHEME, SECRET, body)}
    verify(VESICASH_SCHEME, SECRET, headers, body, now=NOW)
    if body:
        index = flip % len(body)
        changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        with pytest.raises(SignatureRejected):
            verify(VESICASH_SCHEME, SECRET, headers, changed, now=NOW)
