"""The simulator's ASGI app: both providers, the control endpoints, webhooks, one shared world."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from refund_tui.sandbox.control import ControlApi
from refund_tui.sandbox.control_webhooks import WebhookControl
from refund_tui.sandbox.gate import quiet_dropped_connections
from refund_tui.sandbox.novasend import NovasendApi
from refund_tui.sandbox.store import WorldStore
from refund_tui.sandbox.vesicash import VesicashApi
from refund_tui.sandbox.webhooks import lifespan


def create_app(state_path: Path | None = None, settle_seconds: float = 1.0) -> Starlette:
    """The simulator, in memory or persisted to ``state_path`` (shared safely between processes).

    ``settle_seconds`` is the settlement unit: a refund is pending for one unit, processing
    for two more, then final. The webhook dispatcher runs with the app's lifespan.
    """
    if not settle_seconds > 0:
        raise ValueError("settle_seconds must be more than zero")
    store = WorldStore(state_path)
    quiet_dropped_connections()
    return Starlette(
        routes=[
            Route("/", _to_control, methods=["GET"]),
            Mount("/vesicash", routes=VesicashApi(store, settle_seconds).routes()),
            Mount("/novasend", routes=NovasendApi(store, settle_seconds).routes()),
            Mount(
                "/_sandbox",
                routes=[*ControlApi(store, settle_seconds).routes(), *WebhookControl(store).routes()],
            ),
        ],
        lifespan=lifespan(store, settle_seconds),
    )


async def _to_control(request: Request) -> Response:
    return RedirectResponse("/_sandbox/")
