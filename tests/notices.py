"""Helpers for webhook tests: a receiver on a loopback port and signed notification bodies
written from docs/wire-contract.md (independently of the simulator's own code)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from refund_tui.config import DEFAULT_SCHEMES
from refund_tui.core.ledger import Attempt, Ledger
from refund_tui.core.models import ProviderName
from refund_tui.core.notices import NoticeInbox
from refund_tui.core.secret import Secret
from refund_tui.receiver import Endpoint, create_receiver, path_for
from refund_tui.serving import BackgroundServer

SECRETS = {
    ProviderName.VESICASH: "vsc_whsec_TEST_not_real",
    ProviderName.NOVASEND: "nvs_whsec_TEST_not_real",
}
HEADERS = {ProviderName.VESICASH: "X-Vesicash-Signature", ProviderName.NOVASEND: "X-Signature-Value"}
#: Event name -> the status word each provider writes in the refund object.
WORDS = {
    ProviderName.VESICASH: {
        "processing": "processing",
        "completed": "successful",
        "failed": "failed",
        "reversed": "reversed",
    },
    ProviderName.NOVASEND: {
        "processing": "processing",
        "completed": "completed",
        "failed": "failed",
        "reversed": "reversed",
    },
}


@contextmanager
def running_receiver(
    ledger: Ledger, secrets_by_provider: dict | None = None, **settings: float
) -> Iterator[str]:
    """A receiver writing to ``ledger`` (``settings``: create_receiver's); yields its base URL."""
    chosen = secrets_by_provider or SECRETS
    endpoints = {p: Endpoint(DEFAULT_SCHEMES[p], Secret(s)) for p, s in chosen.items()}
    app = create_receiver(NoticeInbox(ledger), endpoints, **settings)
    with BackgroundServer(app, name="receiver") as server:
        yield server.url


def notice_body(
    attempt: Attempt,
    state: str,
    *,
    reference: str | None = None,
    failure_reason: str | None = None,
    event_id: str | None = None,
    tagged: bool = True,
) -> bytes:
    """The provider's notification that ``attempt``'s refund reached ``state``."""
    provider = attempt.provider
    reference = reference or attempt.provider_reference
    status = WORDS[provider][state]
    if provider is ProviderName.VESICASH:
        reason = f"{attempt.reason} [{attempt.request.external_reference}]" if tagged else attempt.reason
        payload = {
            "event": f"refund.{state}",
            "data": {
                "reference": reference,
                "payment_reference": attempt.payment_reference,
                "status": status,
                "amount": attempt.amount.wire_number(),
                "currency": attempt.amount.currency,
                "reason": reason,
                "created_at": "2026-11-23T10:00:00.000Z",
                "completed_at": None,
                "failure_reason": failure_reason,
            },
        }
        return json.dumps(payload, separators=(",", ":")).encode()
    payload = {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "type": f"refund.{state}",
        "createdAt": "2026-11-23T10:00:00.000Z",
        "data": {
            "type": "refund",
            "reference": reference,
            "originalReference": attempt.payment_reference,
            "amount": attempt.amount.wire_number(),
            "currency": attempt.amount.currency,
            "status": status,
            "reason": attempt.reason,
            "createdAt": "2026-11-23T10:00:00.000Z",
            "externalReference": attempt.request.external_reference if tagged else None,
            "failureReason": failure_reason,
        },
    }
    return json.dumps(payload).encode()


def signature(provider: ProviderName, body: bytes, secret: str | None = None) -> str:
    """Signed as the provider signs: Novasend over the compact JSON when the body is JSON."""
    key = (secret or SECRETS[provider]).encode()
    if provider is ProviderName.NOVASEND:
        try:
            body = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
        except (ValueError, RecursionError):
            pass
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def deliver(
    url: str,
    provider: ProviderName,
    body: bytes,
    *,
    secret: str | None = None,
    signed_body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``body`` signed like the provider does (over ``signed_body`` when given)."""
    sent_headers = {
        "content-type": "application/json",
        HEADERS[provider]: signature(provider, signed_body or body, secret),
        **(headers or {}),
    }
    return httpx.post(f"{url}{path_for(provider)}", content=body, headers=sent_headers, timeout=10)
