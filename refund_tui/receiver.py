"""The webhook receiver behind ``refund-tui webhooks serve``: ``POST /webhooks/<provider>``.

Every request is checked in this order, and the first failure answers: content type (415),
size (413, read no further than the limit), a whole body within the read timeout (408; a
client that disconnects mid-body gets one throttled log line), signature over the raw
bytes (401, and a log line naming the provider, the client and the reason - never a secret
or a signature), JSON in UTF-8 and shape (400). Nothing in a body is believed before its
signature is proven. Only then is the notice written to the ledger (``NoticeInbox``), and 200
says what it did. A ledger that cannot be written answers 503, so the provider retries.
Kept notices are matched again every second, as attempts learn their references.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from refund_tui.core.ledger import LedgerError, LedgerLost
from refund_tui.core.models import ProviderError, ProviderName
from refund_tui.core.notices import NoticeInbox, NoticeOutcome
from refund_tui.core.secret import Secret
from refund_tui.core.webhooks import SignatureRejected, SignatureScheme, read_json, verify
from refund_tui.providers import novasend, vesicash
from refund_tui.providers.base import Notice
from refund_tui.serving import background_lifespan

log = logging.getLogger("refund_tui.webhooks")

#: Notifications are a few hundred bytes; anything near this is not one.
MAX_BODY_BYTES = 64 * 1024
#: Seconds a client has to send a whole body (a stalled or dribbled one is cut off: 408).
READ_TIMEOUT_SECONDS = 10.0
#: At most one log line this often about clients that sent half a body.
INCOMPLETE_LOG_SECONDS = 60.0
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
    read_timeout: float = READ_TIMEOUT_SECONDS,
) -> Starlette:
    """The receiver app: one route per provider in ``endpoints``, plus ``GET /healthz``.

    ``read_timeout``: seconds a client has to send a whole body, from the end of its headers.
    """
    reader = BodyReader(read_timeout)

    def route(provider: ProviderName, endpoint: Endpoint) -> Route:
        async def receive(request: Request) -> Response:
            return await _receive(request, provider, endpoint, inbox, clock, reader)

        return Route(path_for(provider), receive, methods=["POST"])

    routes = [route(provider, endpoint) for provider, endpoint in endpoints.items()]
    routes.append(Route("/healthz", _healthz, methods=["GET"]))
    lifespan = background_lifespan(lambda: _reconcile_forever(inbox), "webhook-reconcile")
    return Starlette(routes=routes, lifespan=lifespan)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _refuse(status_code: int, message: str, **headers: str) -> Response:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


async def _receive(
    request: Request,
    provider: ProviderName,
    endpoint: Endpoint,
    inbox: NoticeInbox,
    clock: Callable[[], float],
    reader: BodyReader,
) -> Response:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return _refuse(415, "notifications must be sent as application/json")
    body = await reader.read(request, provider)
    if isinstance(body, Response):
        return body
    try:
        verify(endpoint.scheme, endpoint.secret, request.headers, body, now=clock())
    except SignatureRejected as error:
        log.warning("%s notification from %s refused: %s", provider.value, _client(request), error)
        return _refuse(401, "the signature does not prove this notification is genuine")
    try:
        notice = PARSERS[provider](read_json(body))
    except (ValueError, RecursionError):
        return _refuse(400, "the body is not JSON")
    except ProviderError as error:
        return _refuse(400, error.message)
    try:
        outcome = await run_in_threadpool(inbox.receive, notice, body.decode("utf-8"))
    except LedgerLost as error:
        log.critical("%s notification %s not recorded: %s; restart the receiver once the "
                     "ledger is back", provider.value, notice.identity, error)  # fmt: skip
        return _refuse(503, "the receiver's ledger is unavailable; send it again later")
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


class BodyReader:
    """Reads a notification's body, or says why there is none to read."""

    def __init__(self, read_timeout: float) -> None:
        self.read_timeout = read_timeout
        self._incomplete = Throttled(log, INCOMPLETE_LOG_SECONDS)

    async def read(self, request: Request, provider: ProviderName) -> bytes | Response:
        """The body; else 413 as soon as it is known to exceed MAX_BODY_BYTES, 408 when it is
        not all in within the read timeout, an answer nobody reads when the client has gone."""
        source = f"{provider.value} notification from {_client(request)}"
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await _read_limited(request)
        except TimeoutError:
            message = f"the body did not arrive within {self.read_timeout:g} s"
            self._incomplete.warning(f"{source}: {message} (408)")
            return _refuse(408, message, connection="close")
        except ClientDisconnect:
            self._incomplete.warning(f"{source}: the client disconnected before sending the whole body")
            return Response(status_code=400)
        if body is None:
            return _refuse(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes")
        return body


class Throttled:
    """A logger's warnings, at most one per ``interval`` seconds; the next one says how many
    were held back (a flood of hostile clients cannot flood the log)."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self._logger = logger
        self._interval = interval
        self._last: float | None = None
        self._held = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self._interval:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        self._logger.warning("%s%s", message, f" ({held} more like it not logged)" if held else "")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown client"


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
