"""Webhook signatures: a notification is checked before anything in it is believed.

Each provider signs with HMAC-SHA256 and a per-webhook secret. What is signed, where the
signature travels and how it is encoded are settings (``SignatureScheme``), because
Vesicash's public material disagrees with itself (../shared/providers.md). Digests are
compared in constant time; a scheme that signs a timestamp also bounds it, so a captured
delivery cannot be replayed later. Nothing here logs, and no error names a secret or a
signature value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from refund_tui.core.secret import Secret

#: How far a signed timestamp may be from our clock, either way (Stripe's default).
DEFAULT_TOLERANCE = timedelta(minutes=5)
#: Digits in a Unix-seconds timestamp, with room to spare (refuses absurd header values).
_MAX_TIMESTAMP_DIGITS = 12


class SignedContent(StrEnum):
    BODY = "body"
    TIMESTAMP_BODY = "timestamp.body"


class DigestEncoding(StrEnum):
    HEX = "hex"
    BASE64 = "base64"


class SignatureRejected(Exception):
    """The notification is not proven to come from the provider; the message says why."""


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """How one provider signs its notifications."""

    header: str
    signed: SignedContent = SignedContent.BODY
    encoding: DigestEncoding = DigestEncoding.HEX
    timestamp_header: str = "X-Vesicash-Timestamp"
    tolerance: timedelta = DEFAULT_TOLERANCE
    #: Also accept a signature of the body re-serialised as compact JSON (Novasend's sample).
    compact_fallback: bool = False


#: Defaults: the seed's header, hex HMAC-SHA256 of the raw body.
VESICASH_SCHEME = SignatureScheme(header="X-Vesicash-Signature")
NOVASEND_SCHEME = SignatureScheme(header="X-Signature-Value", compact_fallback=True)


def verify(
    scheme: SignatureScheme,
    secret: Secret,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
) -> None:
    """Return when ``body`` carries a valid signature; SignatureRejected otherwise.

    ``headers`` must look names up case-insensitively (Starlette's and httpx's do);
    ``now`` is the receiver's Unix time, for schemes that sign a timestamp.
    """
    provided = _provided_digest(scheme, headers.get(scheme.header, ""))
    prefix = b""
    if scheme.signed is SignedContent.TIMESTAMP_BODY:
        prefix = _checked_timestamp(scheme, headers.get(scheme.timestamp_header, ""), now) + b"."
    key = secret.reveal().encode("utf-8")
    for content in _signed_candidates(scheme, body):
        expected = hmac.new(key, prefix + content, hashlib.sha256).digest()
        if hmac.compare_digest(expected, provided):
            return
    raise SignatureRejected(f"the {scheme.header} signature does not match the body")


def sign(scheme: SignatureScheme, secret: Secret, body: bytes, timestamp: int | None = None) -> str:
    """The header value ``scheme`` expects for ``body`` (tests and the benchmark send with it)."""
    prefix = f"{timestamp}.".encode() if scheme.signed is SignedContent.TIMESTAMP_BODY else b""
    digest = hmac.new(secret.reveal().encode("utf-8"), prefix + body, hashlib.sha256).digest()
    if scheme.encoding is DigestEncoding.BASE64:
        return base64.b64encode(digest).decode("ascii")
    return digest.hex()


def read_json(body: bytes) -> object:
    """``body`` parsed as JSON text in UTF-8; ValueError when it is not (a lone surrogate,
    escaped as ``\\ud800`` or raw, included: no such string reaches the ledger), and
    RecursionError when it nests too deeply to read."""
    parsed = json.loads(body.decode("utf-8"))
    json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError on a surrogate
    return parsed


def compact_json(body: bytes) -> bytes | None:
    """``body`` re-serialised as Novasend's sample signs it, or None when it is not JSON
    (as ``read_json`` reads it)."""
    try:
        parsed = read_json(body)
    except (ValueError, RecursionError):
        return None
    return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _signed_candidates(scheme: SignatureScheme, body: bytes) -> Iterator[bytes]:
    """The raw body; only if that fails and the scheme allows it, its compact re-serialisation
    (the one time the body is parsed before it is proven, and only to compute a digest)."""
    yield body
    if scheme.compact_fallback:
        compact = compact_json(body)
        if compact is not None and compact != body:
            yield compact


def _provided_digest(scheme: SignatureScheme, value: str) -> bytes:
    value = value.strip().removeprefix("sha256=")
    if not value:
        raise SignatureRejected(f"the {scheme.header} header is missing")
    try:
        if scheme.encoding is DigestEncoding.BASE64:
            return base64.b64decode(value, validate=True)
        return bytes.fromhex(value)
    except (ValueError, binascii.Error):
        raise SignatureRejected(
            f"the {scheme.header} header is not a {scheme.encoding.value} digest"
        ) from None


def _checked_timestamp(scheme: SignatureScheme, value: str, now: float) -> bytes:
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureRejected(f"the {scheme.timestamp_header} header is missing or not Unix seconds")
    if abs(now - int(value)) > scheme.tolerance.total_seconds():
        raise SignatureRejected(
            f"the signed timestamp is more than {scheme.tolerance.total_seconds():g} s "
            "from this host's clock (a replay, or a clock out of sync)"
        )
    return value.encode("ascii")
