"""What every provider request goes through: injected faults, latency and the world lock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from refund_tui.sandbox.store import WorldStore
from refund_tui.sandbox.world import World

Prepare = Callable[[World], Response | None]
Execute = Callable[[World], Response]


async def provider_call(
    store: WorldStore,
    *,
    server_error: Callable[[], Response],
    prepare: Prepare,
    execute: Execute,
    droppable: bool = False,
) -> Response:
    """Run one provider request with the tester's faults applied.

    ``prepare`` runs first (auth, idempotency claims); a response from it ends the request.
    Then the configured latency passes outside the lock, and ``execute`` runs with the world
    locked. A pending ``fail_next`` answers 500 before either runs; a ``droppable`` (refund)
    request also answers 500 for a pending ``fail_refunds_next``, waits a pending
    ``hold_refund_ms`` on top of the latency (other requests stay fast), and for a pending
    ``drop_next`` keeps what ``execute`` did but drops the connection mid-answer. A held
    request executes even when its client has given up waiting, as a slow provider would.
    """
    async with store.session() as world:
        failing = world.faults.take_failure(refund=droppable)
        latency_seconds = world.faults.latency_ms / 1000
        early = None if failing else prepare(world)
        if droppable and early is None and not failing:
            latency_seconds += world.faults.take_hold()
    if latency_seconds:
        await asyncio.sleep(latency_seconds)
    if failing:
        return server_error()
    if early is not None:
        return early
    async with store.session() as world:
        answer = execute(world)
        if droppable and world.faults.take_drop():
            return DroppedResponse(answer)
        return answer


class ConnectionDropped(Exception):
    """Raised mid-answer on purpose so the server closes the connection."""


class DroppedResponse(Response):
    """Sends the status line, headers and half the body of ``answer``, then drops the line."""

    def __init__(self, answer: Response) -> None:
        super().__init__(answer.body, answer.status_code, media_type=answer.media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send(
            {"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True}
        )
        raise ConnectionDropped("sandbox fault drop_next: connection dropped mid-answer")


class _HideDroppedConnections(logging.Filter):
    """Keeps deliberate drops out of the server's error log (they are not errors)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


_HIDE_DROPS = _HideDroppedConnections()


def quiet_dropped_connections() -> None:
    """Install the filter on uvicorn's error logger (idempotent)."""
    logging.getLogger("uvicorn.error").addFilter(_HIDE_DROPS)
