"""``/_sandbox/webhooks``: where notifications go, how they are signed, delivery faults, the log."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refund_tui.core.models import ProviderName
from refund_tui.sandbox.control import ControlError, bad_request, checked_fields, whole_number
from refund_tui.sandbox.signing import webhook_secret
from refund_tui.sandbox.store import WorldStore
from refund_tui.sandbox.world import WebhookConfig

_URLS = frozenset({"vesicash_url", "novasend_url"})
_SECRETS = frozenset({"vesicash_secret", "novasend_secret"})
_COUNTS = frozenset({"duplicate_next", "reorder_next", "tamper_next"})
_FIELDS = _URLS | _SECRETS | _COUNTS | {"vesicash_signing"}
_SIGNING_CHOICES = {"signed": ("body", "timestamp.body"), "encoding": ("hex", "base64")}


class WebhookControl:
    """``GET`` shows the webhook configuration and the delivery log; ``POST`` changes it."""

    def __init__(self, store: WorldStore) -> None:
        self._store = store

    def routes(self) -> list[Route]:
        return [
            Route("/webhooks", self.show, methods=["GET"]),
            Route("/webhooks", self.configure, methods=["POST"]),
        ]

    async def show(self, request: Request) -> Response:
        async with self._store.session() as world:
            deliveries = [attempt.model_dump(mode="json") for attempt in world.deliveries]
            return JSONResponse({**_view(world.webhooks), "deliveries": deliveries})

    async def configure(self, request: Request) -> Response:
        try:
            changes = checked_fields(await request.body(), _FIELDS, _checked)
        except ControlError as exc:
            return bad_request(exc)
        async with self._store.session() as world:
            if "vesicash_signing" in changes:
                changes["vesicash_signing"] = world.webhooks.vesicash_signing.model_copy(
                    update=changes["vesicash_signing"]
                )
            world.webhooks = world.webhooks.model_copy(update=changes)
            return JSONResponse(_view(world.webhooks))


def _view(config: WebhookConfig) -> dict[str, Any]:
    """The configuration as the endpoints answer it, with the secrets in force."""
    return config.model_dump(mode="json") | {
        "vesicash_secret": webhook_secret(config, ProviderName.VESICASH),
        "novasend_secret": webhook_secret(config, ProviderName.NOVASEND),
    }


def _checked(body: dict[str, Any], name: str) -> Any:
    """One field's value, or ControlError saying what is wrong with it."""
    value = body[name]
    if name in _COUNTS:
        return whole_number(body, name)
    if name == "vesicash_signing":
        return _signing(value)
    if value is None:
        return None
    if name in _URLS and not _is_web_url(value):
        raise ControlError(f"{name} must be an http:// or https:// URL with a host, or null")
    if name in _SECRETS and (not isinstance(value, str) or not value):
        raise ControlError(f"{name} must be a non-empty string, or null for the demo secret")
    return value


def _signing(value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not value.keys() <= _SIGNING_CHOICES.keys():
        raise ControlError('vesicash_signing must be an object with "signed" and/or "encoding"')
    for option, choices in _SIGNING_CHOICES.items():
        if option in value and value[option] not in choices:
            raise ControlError(f"vesicash_signing.{option} must be one of {', '.join(choices)}")
    return value


def _is_web_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return False
    return url.scheme in ("http", "https") and bool(url.host)
