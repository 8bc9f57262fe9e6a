"""Serving an ASGI app with uvicorn: in the foreground, or from a daemon thread.

Shared by the simulator (``refund-tui sandbox``, the embedded sandbox) and the webhook
receiver (``refund-tui webhooks serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import uvicorn

_START_TIMEOUT_SECONDS = 10.0
_STOP_TIMEOUT_SECONDS = 5.0


class ServeError(RuntimeError):
    """A server could not start; the message is meant for the operator."""


def listen(host: str, port: int) -> socket.socket:
    """A bound listening TCP socket, or ServeError saying why not.

    Made with an explicit IPPROTO_TCP so asyncio turns Nagle off on accepted connections
    (without it every keep-alive answer waits ~40 ms for a delayed ACK).
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def uvicorn_config(app: object, *, embedded: bool) -> uvicorn.Config:
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
        lifespan="on",
        loop="asyncio",
        http="h11",
        ws="none",
        **extra,
    )


def background_lifespan(
    work: Callable[[], Coroutine[Any, Any, None]], name: str
) -> Callable[[object], AbstractAsyncContextManager[None]]:
    """An ASGI lifespan that runs ``work()`` as a task while the app serves, cancelled after."""

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        task = asyncio.create_task(work(), name=name)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan


def serve_foreground(app: object, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl+C (which ends this call quietly)."""
    server = uvicorn.Server(uvicorn_config(app, embedded=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


class BackgroundServer:
    """``app`` on a loopback port (ephemeral by default), served from a daemon thread.

    ``with BackgroundServer(app) as server: httpx.get(server.url + "/")``
    """

    def __init__(self, app: object, *, host: str = "127.0.0.1", port: int = 0, name: str = "server"):
        self._app = app
        self._host, self._port, self._name = host, port, name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._url is None:
            raise RuntimeError(f"the {self._name} is not running: call start() first")
        return self._url

    def start(self) -> BackgroundServer:
        """Start serving and return once the server answers. Idempotent."""
        if self._thread is not None:
            return self
        sock = listen(self._host, self._port)
        server = uvicorn.Server(uvicorn_config(self._app, embedded=True))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"refund-tui-{self._name}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise ServeError(f"the {self._name} did not start")
            time.sleep(0.005)
        self._server, self._thread, self._socket, self._url = server, thread, sock, url_of(sock)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end. Idempotent."""
        if self._server is None or self._thread is None or self._socket is None:
            return
        self._server.should_exit = True
        self._thread.join(_STOP_TIMEOUT_SECONDS)
        self._socket.close()
        self._server = self._thread = self._socket = self._url = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
