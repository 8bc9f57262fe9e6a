"""Running the simulator: in the foreground for operators, or embedded in a daemon thread.

Both raise ``refund_tui.serving.ServeError`` with an operator-readable message when the
simulator cannot start.
"""

from __future__ import annotations

from pathlib import Path

from refund_tui.sandbox.app import create_app
from refund_tui.sandbox.demo import (
    NOVASEND_API_CLIENT,
    NOVASEND_API_KEY,
    VESICASH_PUBLIC_KEY,
    VESICASH_SECRET_KEY,
)
from refund_tui.serving import BackgroundServer, ServeError, listen, serve_foreground, url_of


def serve(host: str, port: int, state_path: Path | None, settle_seconds: float) -> None:
    """Run the simulator in the foreground until Ctrl+C, after printing how to reach it.

    Raises ServeError when ``host:port`` cannot be listened on or a setting is wrong.
    """
    try:
        app = create_app(state_path, settle_seconds)
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    except OSError as exc:
        raise ServeError(f"cannot keep the state in {state_path}: {exc.strerror or exc}") from None
    sock = listen(host, port)
    print(banner(url_of(sock), state_path, settle_seconds), flush=True)
    serve_foreground(app, sock)
    print("sandbox stopped", flush=True)


def banner(url: str, state_path: Path | None, settle_seconds: float) -> str:
    """What ``serve`` prints: base URLs, demo credentials, control endpoints, state file."""
    state = str(state_path) if state_path else "in memory (lost on exit)"
    return "\n".join(
        [
            f"refund-tui sandbox listening on {url}  (Ctrl+C to stop)",
            "",
            f"  Vesicash  base URL    {url}/vesicash",
            f"            public key  {VESICASH_PUBLIC_KEY}",
            f"            secret key  {VESICASH_SECRET_KEY}",
            f"  Novasend  base URL    {url}/novasend",
            f"            api_key     {NOVASEND_API_KEY}",
            f"            api_client  {NOVASEND_API_CLIENT}",
            "",
            f"  Control   {url}/_sandbox/  (payments, refunds, faults, clock, webhooks, reset)",
            f"  State     {state}",
            f"  Settle    {settle_seconds:g} s per step (pending 1, processing 2 more, then final)",
            "  Demo credentials only: this simulator never moves money.",
        ]
    )


class EmbeddedSandbox(BackgroundServer):
    """The simulator on an ephemeral loopback port, served from a daemon thread.

    ``with EmbeddedSandbox() as sandbox: httpx.get(sandbox.url + "/_sandbox/")``; append
    ``/vesicash``, ``/novasend`` or ``/_sandbox/`` to ``url``.
    """

    def __init__(self, state_path: Path | None = None, settle_seconds: float = 1.0) -> None:
        super().__init__(create_app(state_path, settle_seconds), name="embedded sandbox")
