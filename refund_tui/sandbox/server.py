"""Running the simulator: in the foreground for operators, or embedded in a daemon thread."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from refund_tui.sandbox.app import create_app
from refund_tui.sandbox.demo import (
    NOVASEND_API_CLIENT,
    NOVASEND_API_KEY,
    VESICASH_PUBLIC_KEY,
    VESICASH_SECRET_KEY,
)

_START_TIMEOUT_SECONDS = 10.0
_STOP_TIMEOUT_SECONDS = 5.0


class SandboxStartError(RuntimeError):
    """The simulator could not start; the message is meant for the operator."""


def serve(host: str, port: int, state_path: Path | None, settle_seconds: float) -> None:
    """Run the simulator in the foreground until Ctrl+C, after printing how to reach it.

    Raises SandboxStartError when ``host:port`` cannot be listened on or a setting is wrong.
    """
    try:
        app = create_app(state_path, settle_seconds)
    except ValueError as exc:
        raise SandboxStartError(str(exc)) from None
    except OSError as exc:
        raise SandboxStartError(f"cannot keep the state in {state_path}: {exc.strerror or exc}") from None
    sock = _listen(host, port)
    server = uvicorn.Server(_config(app, embedded=False))
    print(banner(_url(sock), state_path, settle_seconds), flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        print("sandbox stopped", flush=True)
    finally:
        sock.close()


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
            f"  Control   {url}/_sandbox/  (payments, refunds, faults, clock, reset)",
            f"  State     {state}",
            f"  Settle    {settle_seconds:g} s per step (pending 1, processing 2 more, then final)",
            "  Demo credentials only: this simulator never moves money.",
        ]
    )


class EmbeddedSandbox:
    """The simulator on an ephemeral loopback port, served from a daemon thread.

    ``with EmbeddedSandbox() as sandbox: httpx.get(sandbox.url + "/_sandbox/")``
    """

    def __init__(self, state_path: Path | None = None, settle_seconds: float = 1.0) -> None:
        self._app = create_app(state_path, settle_seconds)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; append ``/vesicash``, ``/novasend`` or ``/_sandbox/``."""
        if self._url is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return self._url

    def start(self) -> EmbeddedSandbox:
        """Start serving and return once the server answers. Idempotent."""
        if self._thread is not None:
            return self
        sock = _listen("127.0.0.1", 0)
        server = uvicorn.Server(_config(self._app, embedded=True))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="refund-tui-sandbox", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise SandboxStartError("the embedded sandbox did not start")
            time.sleep(0.005)
        self._server, self._thread, self._socket, self._url = server, thread, sock, _url(sock)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end. Idempotent."""
        if self._server is None or self._thread is None or self._socket is None:
            return
        self._server.should_exit = True
        self._thread.join(_STOP_TIMEOUT_SECONDS)
        self._socket.close()
        self._server = self._thread = self._socket = self._url = None

    def __enter__(self) -> EmbeddedSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _config(app: object, *, embedded: bool) -> uvicorn.Config:
    """Quiet uvicorn: warnings and errors only, no access log. Embedded, leave logging setup
    to the host application (its handlers decide where records go; by default nowhere, so
    nothing is written over the console's screen)."""
    extra = {"log_config": None} if embedded else {}
    if embedded:
        logging.getLogger("uvicorn").addHandler(logging.NullHandler())
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="h11",
        ws="none",
        **extra,
    )


def _listen(host: str, port: int) -> socket.socket:
    """A bound listening TCP socket, or SandboxStartError saying why not.

    Made with an explicit IPPROTO_TCP so asyncio turns Nagle off on accepted connections
    (without it every keep-alive answer waits ~40 ms for a delayed ACK).
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise SandboxStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError as exc:
        sock.close()
        raise SandboxStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
