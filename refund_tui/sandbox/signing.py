"""Webhook secrets and signatures, as each provider signs its notifications (wire-contract.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from refund_tui.core.models import ProviderName
from refund_tui.sandbox.demo import NOVASEND_WEBHOOK_SECRET, VESICASH_WEBHOOK_SECRET
from refund_tui.sandbox.world import WebhookConfig

VESICASH_SIGNATURE = "X-Vesicash-Signature"
VESICASH_TIMESTAMP = "X-Vesicash-Timestamp"
NOVASEND_SIGNATURE = "X-Signature-Value"


def webhook_secret(config: WebhookConfig, provider: ProviderName) -> str:
    """The secret ``provider``'s notifications are signed with: the configured one, or the demo one."""
    if provider is ProviderName.VESICASH:
        return config.vesicash_secret or VESICASH_WEBHOOK_SECRET
    return config.novasend_secret or NOVASEND_WEBHOOK_SECRET


def signature_headers(
    config: WebhookConfig, provider: ProviderName, signed: str, *, unix_seconds: int, tampered: bool
) -> dict[str, str]:
    """The signature header(s) for a notification whose signed string is ``signed``.

    Vesicash may sign ``<unix_seconds>.<body>`` (then the timestamp travels in its own header)
    and write the digest in base64. ``tampered`` spoils the signature (one character changed).
    """
    key = webhook_secret(config, provider).encode("utf-8")
    if provider is ProviderName.NOVASEND:
        digest = hmac.new(key, signed.encode("utf-8"), hashlib.sha256).hexdigest()
        return {NOVASEND_SIGNATURE: _spoiled(digest) if tampered else digest}
    options = config.vesicash_signing
    headers = {}
    if options.signed == "timestamp.body":
        headers[VESICASH_TIMESTAMP] = str(unix_seconds)
        signed = f"{unix_seconds}.{signed}"
    raw = hmac.new(key, signed.encode("utf-8"), hashlib.sha256).digest()
    digest = raw.hex() if options.encoding == "hex" else base64.b64encode(raw).decode("ascii")
    headers[VESICASH_SIGNATURE] = _spoiled(digest) if tampered else digest
    return headers


def _spoiled(digest: str) -> str:
    """``digest`` with its first character changed: still well-formed, no longer right."""
    return ("1" if digest[0] == "0" else "0") + digest[1:]
