"""Several simulators sharing one state file see one world (threads and separate processes)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from refund_tui.sandbox.demo import (
    NOVASEND_API_CLIENT,
    NOVASEND_API_KEY,
    VESICASH_PUBLIC_KEY,
    VESICASH_SECRET_KEY,
)

VESICASH_KEYS = {"public-key": VESICASH_PUBLIC_KEY, "secret-key": VESICASH_SECRET_KEY}
NOVASEND_AUTH = (NOVASEND_API_KEY, NOVASEND_API_CLIENT)


@pytest.fixture(scope="module")
def web() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def vesicash_refund(web: httpx.Client, sandbox, amount: float) -> httpx.Response:
    """A refund of ``amount`` GHS on VSC-GH-FRESH (250.00 paid)."""
    body = {
        "amount": amount,
        "payment_reference": "VSC-GH-FRESH",
        "country_id": 83,
        "transfer_to": "mobile_number",
        "momo_phone_number": "233245550101",
        "reason": "r",
    }
    return web.post(f"{sandbox.vesicash_url}/v1/payment/refunds/process", json=body, headers=VESICASH_KEYS)


def novasend_refund(web: httpx.Client, sandbox, key: str) -> httpx.Response:
    return web.post(
        f"{sandbox.novasend_url}/v1/payin/tr_demo_fresh/refund",
        json={"amount": 100, "reason": "r", "externalReference": "e-1"},
        headers={"X-Idempotency-Key": key},
        auth=NOVASEND_AUTH,
    )


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "sandbox" / "state.json"


def test_two_simulators_on_one_file_share_the_world(web, run_sandbox, state_path):
    with run_sandbox(state_path=state_path) as first, run_sandbox(state_path=state_path) as second:
        assert vesicash_refund(web, first, 10).status_code == 200
        assert [r["amount"] for r in second.refunds() if r["payment_reference"] == "VSC-GH-FRESH"] == [10]
        created = second.create_payment("novasend", 5000, "XOF", "+2250701234567")
        assert web.get(f"{first.novasend_url}/v1/payin/{created}", auth=NOVASEND_AUTH).status_code == 200
        first.faults(fail_next=1)
        assert web.get(f"{second.vesicash_url}/v1/countries", headers=VESICASH_KEYS).status_code == 500
        moved = datetime.fromisoformat(first.advance(7200))
        assert datetime.fromisoformat(second.advance(0)) >= moved


def test_idempotency_keys_hold_across_simulators(web, run_sandbox, state_path):
    with run_sandbox(state_path=state_path) as first, run_sandbox(state_path=state_path) as second:
        answer = novasend_refund(web, first, "shared-key")
        replay = novasend_refund(web, second, "shared-key")
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.content == answer.content
        assert len([r for r in second.refunds() if r["payment_reference"] == "tr_demo_fresh"]) == 1


def test_concurrent_simulators_cannot_over_refund(web, run_sandbox, state_path):
    with run_sandbox(state_path=state_path) as first, run_sandbox(state_path=state_path) as second:
        targets = [first, second] * 6
        with ThreadPoolExecutor(len(targets)) as pool:
            answers = list(pool.map(lambda sandbox: vesicash_refund(web, sandbox, 250), targets))
        assert sorted(a.status_code for a in answers) == [200] + [400] * 11
        refunds = [r for r in first.refunds() if r["payment_reference"] == "VSC-GH-FRESH"]
        assert [r["amount"] for r in refunds] == [250]


def test_world_survives_a_restart(web, run_sandbox, state_path):
    with run_sandbox(state_path=state_path) as before:
        reference = vesicash_refund(web, before, 12.5).json()["data"]["reference"]
    assert state_path.exists()
    with run_sandbox(state_path=state_path) as after:
        assert reference in [r["refund_reference"] for r in after.refunds()]


def test_in_memory_simulators_are_separate_worlds(web, run_sandbox):
    with run_sandbox() as first, run_sandbox() as second:
        vesicash_refund(web, first, 10)
        assert not [r for r in second.refunds() if r["payment_reference"] == "VSC-GH-FRESH"]


def test_unreadable_state_is_replaced_by_the_seeded_world(run_sandbox, state_path, caplog):
    state_path.parent.mkdir(parents=True)
    state_path.write_text("{ not json")
    caplog.set_level(logging.WARNING, logger="refund_tui.sandbox.store")
    with run_sandbox(state_path=state_path) as sandbox:
        assert any(r["payment_reference"] == "VSC-GH-PARTIAL" for r in sandbox.refunds())
    assert "unreadable" in caplog.text
    assert '"VSC-GH-FRESH"' in state_path.read_text()


def test_a_refund_made_by_another_process_is_known(web, run_sandbox, state_path):
    script = textwrap.dedent(f"""
        import httpx
        from pathlib import Path
        from refund_tui.sandbox.server import EmbeddedSandbox
        body = {{"amount": 7, "payment_reference": "VSC-GH-FRESH", "country_id": 83,
                 "transfer_to": "mobile_number", "momo_phone_number": "233245550101", "reason": "r"}}
        with EmbeddedSandbox(Path({str(state_path)!r})) as sandbox:
            answer = httpx.post(sandbox.url + "/vesicash/v1/payment/refunds/process", json=body,
                                headers={VESICASH_KEYS!r})
            print(answer.json()["data"]["reference"])
    """)
    with run_sandbox(state_path=state_path) as sandbox:
        assert vesicash_refund(web, sandbox, 240).status_code == 200
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        other = run.stdout.strip()
        references = [
            r["refund_reference"] for r in sandbox.refunds() if r["payment_reference"] == "VSC-GH-FRESH"
        ]
        assert references[-1] == other and len(references) == 2
        # 250.00 paid, 240 + 7 refunded: 3.01 is one cent too many whichever process asks.
        assert vesicash_refund(web, sandbox, 3.01).status_code == 400


def test_a_key_claimed_by_a_process_that_died_is_freed_after_its_grace(web, run_sandbox, state_path):
    script = textwrap.dedent(f"""
        import httpx
        from pathlib import Path
        from refund_tui.sandbox.server import EmbeddedSandbox
        with EmbeddedSandbox(Path({str(state_path)!r})) as sandbox:
            httpx.post(sandbox.url + "/_sandbox/faults", json={{"latency_ms": 60000}})
            print("ready", flush=True)
            httpx.post(sandbox.url + "/novasend/v1/payin/tr_demo_fresh/refund",
                       json={{"amount": 100, "reason": "r", "externalReference": "e-1"}},
                       headers={{"X-Idempotency-Key": "orphan"}}, auth={NOVASEND_AUTH!r}, timeout=None)
    """)
    with run_sandbox(state_path=state_path) as sandbox:
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline().strip() == "ready"
            _wait_for(lambda: "orphan" in state_path.read_text())
        finally:
            process.kill()
            process.wait(timeout=10)
        sandbox.faults(latency_ms=0)
        in_progress = novasend_refund(web, sandbox, "orphan")
        assert (in_progress.status_code, in_progress.json()["code"]) == (409, "request_in_progress")
        state = json.loads(state_path.read_text())
        state["idempotency"]["orphan"]["claimed_until"] = 0
        state_path.write_text(json.dumps(state))
        assert novasend_refund(web, sandbox, "orphan").status_code == 200
        assert len([r for r in sandbox.refunds() if r["payment_reference"] == "tr_demo_fresh"]) == 1


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
