"""The webhook receiver behind ``refund-tui webhooks serve``: ``POST /webhooks/<provider>``.

Every request is checked in this order, and the first failure answers: content type (415),
size (413, read no further than the limit), signature over the raw bytes (401, and a log
line naming the provider, the client and the reason - never a secret or a signature), JSON
and shape (400). Nothing in a body is believed before its signature is proven. Only then is the notice written to the ledger (``NoticeInbox``), and 200
says what it did. A ledger that cannot be written answers 503, so the provider retries.
Kept notices are matched again every second, as attempts learn their references.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refund_tui.core.ledger import LedgerError
from refund_tui.core.models import ProviderError, ProviderName
from refund_tui.core.notices import NoticeInbox, NoticeOutcome
from refund_tui.core.provider import Notice
from refund_tui.core.secret import Secret
from refund_tui.core.webhooks import SignatureRejected, SignatureScheme, verify
from refund_tui.providers import novasend, vesicash
from refund_tui.serving import background_lifespan

log = logging.getLogger("refund_tui.webhooks")

#: Notifications are a few hundred bytes; anything near this is not one.
MAX_BODY_BYTES = 64 * 1024
RECONCILE_SECONDS = 1.0
PARSERS: dict[ProviderName, Callable[[object], Notice]] = {
    ProviderName.VESICASH: vesicash.parse_notice,
    ProviderName.NOVASEND: novasend.parse_notice,
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What verifies one provider's notifications."""

    scheme: SignatureScheme
    secret: Secret


def path_for(provider: ProviderName) -> str:
    return f"/webhooks/{provider.value}"


def create_receiver(
    inbox: NoticeInbox,
    endpoints: dict[ProviderName, Endpoint],
    *,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The receiver app: one route per provider in ``endpoints``, plus ``GET /healthz``."""

    def route(provider: ProviderName, endpoint: Endpoint) -> Route:
        async def receive(request: Request) -> Response:
            return await _receive(request, provider, endpoint, inbox, clock)

        return Route(path_for(provider), receive, methods=["POST"])

    routes = [route(provider, endpoint) for provider, endpoint in endpoints.items()]
    routes.append(Route("/healthz", _healthz, methods=["GET"]))
    lifespan = background_lifespan(lambda: _reconcile_forever(inbox), "webhook-reconcile")
    return Starlette(routes=routes, lifespan=lifespan)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _refuse(status_code: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status_code)


async def _receive(
    request: Request,
    provider: ProviderName,
    endpoint: Endpoint,
    inbox: NoticeInbox,
    clock: Callable[[], float],
) -> Response:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return _refuse(415, "notifications must be sent as application/json")
    body = await _read_limited(request)
    if body is None:
        return _refuse(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes")
    try:
        verify(endpoint.scheme, endpoint.secret, request.headers, body, now=clock())
    except SignatureRejected as error:
        client = request.client.host if request.client else "unknown client"
        log.warning("%s notification from %s refused: %s", provider.value, client, error)
        return _refuse(401, "the signature does not prove this notification is genuine")
    try:
        notice = PARSERS[provider](json.loads(body))
    except (ValueError, RecursionError):
        return _refuse(400, "the body is not JSON")
    except ProviderError as error:
        return _refuse(400, error.message)
    try:
        outcome = await run_in_threadpool(inbox.receive, notice, body.decode("utf-8", "replace"))
    except LedgerError as error:
        log.error("%s notification %s not recorded: %s", provider.value, notice.identity, error)
        return _refuse(503, "the ledger is busy; send it again later")
    log.info("%s %s %s: %s", provider.value, notice.event, notice.refund_reference or "-", outcome.value)
    if outcome is NoticeOutcome.IGNORED and notice.refund_reference:
        log.warning("%s %s: a refund event refund-tui cannot read; recorded, not applied",
                    provider.value, notice.event)  # fmt: skip
    elif outcome is NoticeOutcome.CONFLICT:
        log.warning("%s %s %s contradicts the ledger: the refund attempt is flagged",
                    provider.value, notice.event, notice.refund_reference)  # fmt: skip
    return JSONResponse({"outcome": outcome.value})


async def _read_limited(request: Request) -> bytes | None:
    """The body, or None as soon as it is known to exceed MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _reconcile_forever(inbox: NoticeInbox) -> None:
    while True:
        await asyncio.sleep(RECONCILE_SECONDS)
        try:
            matched = await run_in_threadpool(inbox.reconcile)
        except LedgerError as error:
            log.warning("kept notifications not matched this time: %s", error)
            continue
        if matched:
            log.info("%d kept notification(s) matched to their refund attempts", matched)
