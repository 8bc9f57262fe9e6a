"""Webhook secrets and signatures, as each provider signs its notifications (wire-contract.md)."""

from __future__ import annotations

from dataclasses import replace

from refund_tui.core.models import ProviderName
from refund_tui.core.secret import Secret
from refund_tui.core.webhooks import (
    NOVASEND_SCHEME,
    VESICASH_SCHEME,
    DigestEncoding,
    SignatureScheme,
    SignedContent,
    sign,
)
from refund_tui.sandbox.demo import NOVASEND_WEBHOOK_SECRET, VESICASH_WEBHOOK_SECRET
from refund_tui.sandbox.world import WebhookConfig


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
    scheme = _scheme(config, provider)
    headers = {}
    if scheme.signed is SignedContent.TIMESTAMP_BODY:
        headers[scheme.timestamp_header] = str(unix_seconds)
    secret = Secret(webhook_secret(config, provider))
    digest = sign(scheme, secret, signed.encode("utf-8"), unix_seconds)
    headers[scheme.header] = _spoiled(digest) if tampered else digest
    return headers


def vesicash_scheme(signed: str, encoding: str) -> SignatureScheme:
    """Vesicash's scheme with the simulator's ``vesicash_signing`` options."""
    return replace(VESICASH_SCHEME, signed=SignedContent(signed), encoding=DigestEncoding(encoding))


def _scheme(config: WebhookConfig, provider: ProviderName) -> SignatureScheme:
    if provider is ProviderName.NOVASEND:
        return NOVASEND_SCHEME
    return vesicash_scheme(config.vesicash_signing.signed, config.vesicash_signing.encoding)


def _spoiled(digest: str) -> str:
    """``digest`` with its first character changed: still well-formed, no longer right."""
    return ("1" if digest[0] == "0" else "0") + digest[1:]
