"""Which refund changes become webhook notifications, and their exact bodies (wire-contract.md).

A notification is a snapshot: its body shows the refund as it stood when it entered the
status notified, and never changes afterwards (retries resend the same bytes).
"""

from __future__ import annotations

import json
from datetime import datetime

from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.sandbox import novasend, vesicash
from refund_tui.sandbox.settlement import Stage, stages
from refund_tui.sandbox.world import Notification, SandboxPayment, SandboxRefund, World, iso, token

#: The statuses each provider sends a notification for.
NOTIFIED: dict[ProviderName, frozenset[RefundStatus]] = {
    ProviderName.VESICASH: frozenset({RefundStatus.COMPLETED, RefundStatus.FAILED, RefundStatus.REVERSED}),
    ProviderName.NOVASEND: frozenset(
        {RefundStatus.PROCESSING, RefundStatus.COMPLETED, RefundStatus.FAILED, RefundStatus.REVERSED}
    ),
}


def queue_changes(world: World, unit_seconds: float) -> None:
    """Queue one notification per status each refund reached since the last look, oldest first.

    A change seen while no URL applies is only recorded. A refund picked by ``reorder_next``
    has its notifications held until it can change no more, then released newest first.
    """
    now = world.now()
    moving = [(p, r) for p in world.payments.values() for r in p.refunds if r.notified is not stages(r.phone)[-1].status]
    for payment, refund in sorted(moving, key=lambda pair: pair[1].created_at):
        path = stages(refund.phone)
        seen = [stage.status for stage in path].index(refund.notified)
        fresh = [s for s in path[seen + 1 :] if s.starts(refund.created_at, unit_seconds) <= now]
        if not fresh:
            continue
        refund.notified = fresh[-1].status
        _queue(world, payment, refund, fresh, unit_seconds)
        if refund.notified is path[-1].status and refund.notified.is_terminal:
            _release(world, refund.reference)


def _queue(
    world: World, payment: SandboxPayment, refund: SandboxRefund, fresh: list[Stage], unit_seconds: float
) -> None:
    """Queue the ``fresh`` stages the provider notifies, when a URL applies to the refund."""
    url = _target(world, payment, refund)
    notified = [stage for stage in fresh if stage.status in NOTIFIED[payment.provider]]
    if url is None or not notified:
        return
    held = _holding(world, refund.reference) or world.webhooks.take("reorder_next")
    now = world.now()
    for stage in notified:
        event = f"refund.{stage.status.value}"
        event_id = "evt_" + token(24)
        at = stage.starts(refund.created_at, unit_seconds)
        body, signed = _body(payment, refund, event, event_id, at, unit_seconds)
        world.outbox.append(
            Notification(
                event_id=event_id,
                provider=payment.provider,
                event=event,
                refund_reference=refund.reference,
                url=url,
                body=body,
                signed=signed,
                due=now,
                held=held,
            )
        )


def _target(world: World, payment: SandboxPayment, refund: SandboxRefund) -> str | None:
    """Vesicash: the request's own URL, else the merchant default. Novasend: the merchant URL."""
    if payment.provider is ProviderName.VESICASH:
        return refund.webhook_url or world.webhooks.vesicash_url
    return world.webhooks.novasend_url


def _holding(world: World, refund_reference: str) -> bool:
    return any(_held_for(n, refund_reference) for n in world.outbox)


def _release(world: World, refund_reference: str) -> None:
    """Send a refund's held notifications after everything else queued, newest first."""
    held = [n for n in world.outbox if _held_for(n, refund_reference)]
    world.outbox = [n for n in world.outbox if not _held_for(n, refund_reference)]
    world.outbox.extend(n.model_copy(update={"held": False}) for n in reversed(held))


def _held_for(notification: Notification, refund_reference: str) -> bool:
    return notification.held and notification.refund_reference == refund_reference


def _body(
    payment: SandboxPayment,
    refund: SandboxRefund,
    event: str,
    event_id: str,
    at: datetime,
    unit_seconds: float,
) -> tuple[str, str]:
    """The body of a notification of ``refund`` as it stood at ``at``, and the string signed."""
    if payment.provider is ProviderName.VESICASH:
        data = vesicash.refund_data(payment, refund, at, unit_seconds)
        data |= {"payment_reference": payment.reference, "currency": payment.currency}
        body = json.dumps({"event": event, "data": data}, separators=(",", ":"), ensure_ascii=False)
        return body, body
    data = novasend.refund_object(payment, refund, at, unit_seconds)
    payload = {"id": event_id, "type": event, "createdAt": iso(at), "data": data}
    return json.dumps(payload), json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
