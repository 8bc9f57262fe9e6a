"""Running the simulator: the embedded thread server and the foreground ``serve``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from refund_tui.sandbox.server import EmbeddedSandbox, banner, serve
from refund_tui.serving import ServeError


def test_embedded_sandbox_lifecycle():
    sandbox = EmbeddedSandbox(settle_seconds=0.5)
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.url
    with sandbox:
        url = sandbox.url
        assert url.startswith("http://127.0.0.1:")
        assert sandbox.start().url == url
        assert httpx.get(f"{url}/_sandbox/").json()["vesicash"]["base_url"] == f"{url}/vesicash"
    sandbox.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sandbox/")


def test_settle_seconds_must_be_positive():
    with pytest.raises(ValueError, match="settle_seconds must be more than zero"):
        EmbeddedSandbox(settle_seconds=0)
    with pytest.raises(ServeError, match="settle_seconds must be more than zero"):
        serve("127.0.0.1", 0, None, -1.0)


def test_serve_explains_a_busy_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            serve("127.0.0.1", port, None, 1.0)


def test_serve_explains_an_unknown_host():
    with pytest.raises(ServeError, match=r"cannot listen on no-such-host\.invalid:8765"):
        serve("no-such-host.invalid", 8765, None, 1.0)


def test_serve_explains_an_unusable_state_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ServeError, match="cannot keep the state in"):
        serve("127.0.0.1", 0, blocker / "state.json", 1.0)


def test_banner_names_urls_credentials_and_state(tmp_path):
    text = banner("http://127.0.0.1:8765", tmp_path / "state.json", 1.0)
    for expected in (
        "http://127.0.0.1:8765/vesicash",
        "http://127.0.0.1:8765/novasend",
        "http://127.0.0.1:8765/_sandbox/",
        "vsc_pub_DEMO_not_a_real_key",
        "vsc_sec_DEMO_not_a_real_key",
        "nvs_DEMO_api_key",
        "nvs_DEMO_client",
        str(tmp_path / "state.json"),
    ):
        assert expected in text
    assert "in memory" in banner("http://h:1", None, 0.5)


def test_serve_runs_in_the_foreground_until_interrupted(tmp_path: Path):
    state = tmp_path / "state.json"
    code = (
        "from pathlib import Path; from refund_tui.sandbox.server import serve; "
        f"serve('127.0.0.1', 0, Path({str(state)!r}), 1.0)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = process.stdout.readline().split("listening on ")[1].split()[0]
        assert httpx.get(f"{url}/_sandbox/", timeout=5).json()["novasend"]["base_url"] == f"{url}/novasend"
        assert httpx.get(f"{url}/_sandbox/refunds", timeout=5).json()
        assert state.exists()
    finally:
        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors
    assert "sandbox stopped" in output
    assert "Traceback" not in errors


def test_importing_the_sandbox_does_not_import_textual():
    code = "import sys, refund_tui.sandbox.server; print('textual' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert run.stdout.strip() == "False", run.stderr
