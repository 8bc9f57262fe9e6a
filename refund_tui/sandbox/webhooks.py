"""The webhook dispatcher: a task beside the simulator that queues, claims, sends and retries.

Each round, with the world locked, it queues what refunds did since the last round
(``notifications.queue_changes``) and claims the deliveries that are due, writing a lease into
the world so that processes sharing a state file never send the same one twice. It sends them
with the world unlocked, then records the outcomes. It never stops the simulator: a round that
fails is logged and the next one runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta

import httpx

from refund_tui.sandbox.notifications import queue_changes
from refund_tui.sandbox.signing import signature_headers
from refund_tui.sandbox.store import WorldStore
from refund_tui.sandbox.world import DeliveryAttempt, Notification, World, iso
from refund_tui.serving import background_lifespan

log = logging.getLogger(__name__)

USER_AGENT = "refund-tui-sandbox"
TIMEOUT_SECONDS = 5.0
#: Units to wait before each retry; one attempt more than there are delays, then it is given up.
RETRY_UNITS = (1, 2, 4, 8, 16)
MAX_ATTEMPTS = len(RETRY_UNITS) + 1
#: How long a claimed delivery stays claimed, should the process sending it die.
LEASE_SECONDS = 30.0
#: The notification fields a delivery attempt's log entry repeats.
_LOGGED = {"event_id", "provider", "event", "refund_reference", "url"}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed attempt, ready to send with the world unlocked."""

    notification: Notification
    headers: dict[str, str]
    duplicate: bool
    tampered: bool
    at: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one POST got: a status code, or why there was none."""

    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Dispatcher:
    """Sends one world's webhook notifications."""

    def __init__(self, store: WorldStore, settle_seconds: float) -> None:
        self._store = store
        self._unit = settle_seconds
        self.interval = max(0.02, min(0.25, settle_seconds / 4))

    async def run(self) -> None:
        """Dispatch until cancelled."""
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            while True:
                try:
                    await self.dispatch(client)
                except Exception:
                    log.exception("sandbox webhooks: a dispatch round failed; carrying on")
                await asyncio.sleep(self.interval)

    async def dispatch(self, client: httpx.AsyncClient) -> None:
        """One round: queue changes, claim what is due, send it, record the outcomes."""
        async with self._store.session() as world:
            queue_changes(world, self._unit)
            deliveries = _claim(world)
        if not deliveries:
            return
        outcomes = await asyncio.gather(*(_send(client, delivery) for delivery in deliveries))
        async with self._store.session() as world:
            for delivery, sent in zip(deliveries, outcomes, strict=True):
                self._record(world, delivery, sent)

    def _record(self, world: World, delivery: Delivery, sent: list[Outcome]) -> None:
        """Log the attempt; then done, given up, or due again after its back-off."""
        event_id = delivery.notification.event_id
        notification = next((n for n in world.outbox if n.event_id == event_id), None)
        if notification is None:  # the world was reset meanwhile
            return
        for copy, outcome in enumerate(sent):
            world.log_delivery(
                DeliveryAttempt(
                    **delivery.notification.model_dump(include=_LOGGED),
                    attempt=delivery.notification.attempts,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    tampered=delivery.tampered,
                    duplicate=copy > 0,
                    at=delivery.at,
                )
            )
        if any(outcome.delivered for outcome in sent) or notification.attempts >= MAX_ATTEMPTS:
            world.outbox.remove(notification)
            return
        backoff = timedelta(seconds=RETRY_UNITS[notification.attempts - 1] * self._unit)
        notification.due = world.now() + backoff
        notification.claimed_until = 0.0


def _claim(world: World) -> list[Delivery]:
    """Lease every due notification that is first in line for its refund."""
    now, wall = world.now(), time.time()
    in_line: set[str] = set()
    claimed = []
    for notification in world.outbox:
        first = notification.refund_reference not in in_line
        in_line.add(notification.refund_reference)
        if not first or notification.held or notification.due > now or notification.claimed_until > wall:
            continue
        notification.attempts += 1
        notification.claimed_until = wall + LEASE_SECONDS
        tampered = not notification.tampered and world.webhooks.take("tamper_next")
        notification.tampered |= tampered
        signature = signature_headers(
            world.webhooks,
            notification.provider,
            notification.signed,
            unix_seconds=int(wall),
            tampered=tampered,
        )
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **signature}
        duplicate = world.webhooks.take("duplicate_next")
        claimed.append(Delivery(notification.model_copy(), headers, duplicate, tampered, iso(now)))
    return claimed


async def _send(client: httpx.AsyncClient, delivery: Delivery) -> list[Outcome]:
    """POST the notification (twice, byte for byte, for a duplicate)."""
    return [await _post(client, delivery) for _ in range(2 if delivery.duplicate else 1)]


async def _post(client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
    body = delivery.notification.body.encode("utf-8")
    try:
        response = await client.post(delivery.notification.url, content=body, headers=delivery.headers)
    except httpx.TimeoutException:
        return Outcome(error=f"no answer within {TIMEOUT_SECONDS:g} s")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}")
    return Outcome(status_code=response.status_code)


def lifespan(store: WorldStore, settle_seconds: float) -> Callable[[object], AbstractAsyncContextManager[None]]:
    """A Starlette lifespan running the dispatcher while the app serves."""
    return background_lifespan(lambda: Dispatcher(store, settle_seconds).run(), "sandbox-webhooks")
