"""The webhook receiver against hostile, unauthenticated clients, over a raw TCP socket.

Whatever a client sends or fails to send, the receiver answers a 4xx (or nothing, to a
client that has gone) and never logs a traceback; the next genuine request is served.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from refund_tui.core.models import ProviderName
from refund_tui.core.notices import NoticeInbox
from refund_tui.receiver import path_for
from tests.notices import running_receiver, signature
from tests.test_webhook_receiver import PROVIDERS, refund

READ_TIMEOUT = 0.5
#: A lone surrogate, written as a JSON escape and as the raw bytes UTF-8 forbids for it.
LONE_SURROGATE_ESCAPE = b'{"a":"\\ud800"}'
LONE_SURROGATE_BYTES = b'{"a":"\xed\xa0\x80"}'
INVALID_UTF8 = b'{"a":"\xff\xfe"}'


@pytest.fixture
def receiver(session, caplog) -> Iterator[tuple[str, int]]:
    """(host, port) of a receiver with a short read timeout; every log record captured."""
    caplog.set_level(logging.DEBUG)
    with running_receiver(session.ledger, read_timeout=READ_TIMEOUT) as url:
        parts = urlsplit(url)
        yield parts.hostname, parts.port


def request_head(provider: ProviderName, length: int, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        f"POST {path_for(provider)} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(address: tuple[str, int], data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it or goes quiet."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(data)
        return read_answer(conn)


def read_answer(conn: socket.socket) -> bytes:
    received = b""
    try:
        while b"\r\n\r\n" not in received or not _complete(received):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        pass
    return received


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode("latin-1")


def post(address, provider, body: bytes, *, signed: bool) -> bytes:
    headers = {"X-Vesicash-Signature" if provider is ProviderName.VESICASH else "X-Signature-Value":
               signature(provider, body) if signed else "00" * 32}  # fmt: skip
    return exchange(address, request_head(provider, len(body), headers) + body)


def no_traceback(caplog, capfd) -> None:
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert "Traceback" not in caplog.text
    assert [r for r in caplog.records if r.exc_info] == []


def still_serving(address) -> None:
    answer = exchange(address, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_line(answer) == "HTTP/1.1 200 OK"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("body", [LONE_SURROGATE_ESCAPE, LONE_SURROGATE_BYTES, INVALID_UTF8])
def test_a_body_that_is_not_unicode_is_401_unsigned_and_400_signed(
    session, receiver, caplog, capfd, provider, body
):
    assert status_line(post(receiver, provider, body, signed=False)) == "HTTP/1.1 401 Unauthorized"
    assert status_line(post(receiver, provider, body, signed=True)) == "HTTP/1.1 400 Bad Request"
    assert NoticeInbox(session.ledger).recent() == []
    no_traceback(caplog, capfd)
    still_serving(receiver)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_signed_notice_with_a_lone_surrogate_in_a_field_is_400(
    sandbox, session, receiver, caplog, capfd, provider
):
    """A well-formed notice of a real refund, but its failure reason is half a character."""
    from tests.notices import notice_body

    attempt = await refund(sandbox, session, provider)
    marker = "SURROGATE-HERE"
    body = notice_body(attempt, "failed", failure_reason=marker).replace(marker.encode(), b"\\udc00")
    answer = post(receiver, provider, body, signed=True)
    assert status_line(answer) == "HTTP/1.1 400 Bad Request"
    assert session.ledger.get(attempt.attempt_id).status is attempt.status
    no_traceback(caplog, capfd)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_client_gone_mid_body_leaves_one_short_log_line_and_no_traceback(
    session, receiver, caplog, capfd, provider
):
    for _ in range(5):
        with socket.create_connection(receiver, timeout=5) as conn:
            conn.sendall(request_head(provider, 1000) + b'{"event": "refund.comp')
    deadline = time.monotonic() + 5
    while not any("before sending the whole body" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.02)
    still_serving(receiver)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("refund_tui", "uvicorn"))]
    assert len([line for line in lines if "whole body" in line]) == 1, lines
    assert all("\n" not in line and len(line) < 200 for line in lines)
    assert NoticeInbox(session.ledger).recent() == []
    no_traceback(caplog, capfd)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_body_that_stops_arriving_is_cut_off_with_408(session, receiver, caplog, capfd, provider):
    started = time.monotonic()
    with socket.create_connection(receiver, timeout=5) as conn:
        conn.sendall(request_head(provider, 1000) + b'{"event": "refund.comp')
        answer = read_answer(conn)
        waited = time.monotonic() - started
        assert status_line(answer) == "HTTP/1.1 408 Request Timeout"
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
            "error": f"the body did not arrive within {READ_TIMEOUT:g} s"
        }
        assert conn.recv(1) == b""  # and the connection is closed
    assert READ_TIMEOUT <= waited < READ_TIMEOUT + 3
    assert NoticeInbox(session.ledger).recent() == []
    no_traceback(caplog, capfd)
    still_serving(receiver)


def test_a_body_dribbled_byte_by_byte_is_cut_off_too(session, receiver, caplog, capfd):
    """The timeout bounds the whole body, not the gap between bytes (slowloris)."""
    provider = ProviderName.NOVASEND
    started = time.monotonic()
    with socket.create_connection(receiver, timeout=5) as conn:
        conn.sendall(request_head(provider, 1000))
        conn.settimeout(READ_TIMEOUT / 5)
        answer = b""
        while not answer and time.monotonic() - started < READ_TIMEOUT + 3:
            conn.sendall(b" ")
            try:
                answer = conn.recv(65536)
            except TimeoutError:
                continue
    assert status_line(answer) == "HTTP/1.1 408 Request Timeout"
    no_traceback(caplog, capfd)
