"""End to end: the simulator notifies, the receiver verifies and writes the ledger, the
console's board shows it - for both providers, with the providers' APIs down, so nothing
but the webhook can have told the console.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from refund_tui.core.credentials import WEBHOOK_SECRET
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.notices import NoticeInbox
from refund_tui.ledgers.sqlite import SqliteLedger
from refund_tui.receiver import path_for
from refund_tui.session import simulator_index
from refund_tui.tui.screens.board import BoardScreen
from tests.console import wait_for
from tests.notices import running_receiver
from tests.test_service import PAYMENTS, REFUND_AMOUNT, _prepare
from tests.test_tui_board import open_board, status_cell

#: Refunds to these phones fail in the simulator ("Recipient wallet not found").
FAILING_PHONE = {ProviderName.VESICASH: "+233245559901", ProviderName.NOVASEND: "+2250755559901"}


def demo_secrets(sandbox) -> dict[ProviderName, str]:
    published = simulator_index(sandbox.url)
    return {provider: published[provider.value][WEBHOOK_SECRET] for provider in ProviderName}


def accepted(deliveries: list[dict]) -> list[str]:
    """Events the receiver took, in delivery order (a duplicate's second copy left out)."""
    return [d["event"] for d in deliveries if d["status_code"] == 200 and not d["duplicate"]]


def sources(ledger: SqliteLedger, attempt_id: str) -> list[tuple[str, str]]:
    return [(event.status.value, event.source) for event in ledger.events(attempt_id)]


@pytest.mark.parametrize("provider", list(ProviderName))
@pytest.mark.parametrize("outcome", ["completed", "failed"])
async def test_simulator_to_receiver_to_ledger_to_board(
    sandbox, session, app, provider, outcome, monkeypatch
):
    # The board's periodic re-read is off: only the console's watch on the ledger can show it.
    monkeypatch.setattr(BoardScreen, "_tick", lambda board: None)
    phone = FAILING_PHONE[provider] if outcome == "failed" else PAYMENTS[provider]["phone"]
    reference = sandbox.create_payment(**{**PAYMENTS[provider], "phone": phone})
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    if provider is ProviderName.VESICASH:  # the destination wallet decides Vesicash's outcome
        prepared = session.service.prepare(
            prepared.view, amount=REFUND_AMOUNT[provider], reason="Customer cancellation",
            phone=phone, country=next(c for c in await session.service.countries(provider) if c.iso_code == prepared.view.country),
        )  # fmt: skip
    receiver_ledger = SqliteLedger(session.ledger.path)  # its own connection, as another process has
    try:
        with running_receiver(receiver_ledger, demo_secrets(sandbox)) as url:
            sandbox.webhooks(vesicash_url=url + path_for(ProviderName.VESICASH))
            sandbox.webhooks(novasend_url=url + path_for(ProviderName.NOVASEND))
            attempt = await session.service.submit(prepared)
            assert not attempt.status.is_terminal
            sandbox.faults(fail_next=1_000_000)  # from now on the providers' APIs answer 500
            async with app.run_test(size=(120, 40)) as pilot:
                await open_board(app, pilot, 1)
                expected = "ok completed" if outcome == "completed" else "!! FAILED"
                await wait_for(pilot, lambda: status_cell(app, attempt.attempt_id) == expected, timeout=15)
    finally:
        receiver_ledger.close()
    final = session.ledger.get(attempt.attempt_id)
    assert final.status is RefundStatus(outcome)
    if outcome == "failed":
        assert final.failure_reason == "Recipient wallet not found"
    assert (outcome, "webhook") in sources(session.ledger, attempt.attempt_id)
    assert not [s for s in sources(session.ledger, attempt.attempt_id) if s[1] == "poll"]
    delivered = [d for d in sandbox.deliveries() if d["refund_reference"] == attempt.provider_reference]
    assert delivered and all(d["status_code"] == 200 for d in delivered)


async def test_the_simulators_delivery_faults_leave_the_ledger_right(sandbox, session):
    """A tampered first delivery, duplicates and newest-first order, all through the receiver."""
    provider = ProviderName.NOVASEND
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    receiver_ledger = SqliteLedger(session.ledger.path)
    try:
        with running_receiver(receiver_ledger, demo_secrets(sandbox)) as url:
            sandbox.webhooks(
                novasend_url=url + path_for(provider), tamper_next=1, duplicate_next=3, reorder_next=1
            )
            attempt = await session.service.submit(prepared)
            deadline = time.monotonic() + 15
            while len(accepted(sandbox.deliveries())) < 2:
                assert time.monotonic() < deadline, sandbox.deliveries()
                time.sleep(0.05)
    finally:
        receiver_ledger.close()
    log = sandbox.deliveries()
    assert accepted(log) == ["refund.completed", "refund.processing"]
    tampered = [d["status_code"] for d in log if d["tampered"]]
    assert tampered and set(tampered) == {401}
    assert any(d["duplicate"] and d["status_code"] == 200 for d in log)
    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.COMPLETED
    webhook_events = [s for s in sources(session.ledger, attempt.attempt_id) if s[1] == "webhook"]
    assert webhook_events == [("completed", "webhook")]  # the late "processing" moved nothing
    outcomes = {(n.notice.event, n.outcome.value) for n in NoticeInbox(session.ledger).recent()}
    assert outcomes == {("refund.completed", "applied"), ("refund.processing", "stale")}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "refund_tui", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_webhooks_serve_command_points_the_simulator_at_itself(sandbox, sandbox_env, unused_tcp_port):
    """``refund-tui webhooks serve`` on the sandbox profile: it takes the simulator's signing,
    receives the notifications of CLI refunds, and puts back the URL it replaced."""
    sandbox.webhooks(
        vesicash_url="http://127.0.0.1:9/elsewhere",
        vesicash_signing={"signed": "timestamp.body", "encoding": "base64"},
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "refund_tui", "webhooks", "serve", "--port", str(unused_tcp_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        banner = [server.stdout.readline() for _ in range(4)]
        assert "refund-tui webhooks listening on http://127.0.0.1:" in banner[0]
        assert banner[1].split() == ["profile", "sandbox"]
        assert "X-Vesicash-Signature: base64 HMAC-SHA256(timestamp.body)" in banner[2]
        url = banner[0].split("listening on ", 1)[1].split()[0]
        config = sandbox.webhooks()
        assert config["vesicash_url"] == url + "/webhooks/vesicash"
        assert config["novasend_url"] == url + "/webhooks/novasend"
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        for provider, payment, amount in (
            ("novasend", "tr_demo_fresh", "1500"),
            ("vesicash", "VSC-GH-FRESH", "10"),
        ):
            made = cli(env, "refund", "--provider", provider, "--payment", payment, "--amount", amount,
                       "--reason", "Client cancellation", "--yes")  # fmt: skip
            assert made.returncode == 0, made.stderr
        deadline = time.monotonic() + 15
        with SqliteLedger(sandbox_env / "data" / "ledger-sandbox.sqlite3") as ledger:
            while {a.status for a in ledger.attempts()} != {RefundStatus.COMPLETED}:
                assert time.monotonic() < deadline, [a.status for a in ledger.attempts()]
                time.sleep(0.1)
            for attempt in ledger.attempts():
                assert ("completed", "webhook") in sources(ledger, attempt.attempt_id)
            outcomes = [(n.notice.event, n.outcome.value) for n in NoticeInbox(ledger).recent()]
        assert outcomes.count(("refund.completed", "applied")) == 2
        listing = cli(env, "webhooks", "list")
        assert "refund.completed" in listing.stdout and "applied" in listing.stdout
    finally:
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=20)
    assert server.returncode == 0, errors
    assert "vesicash webhooks went to http://127.0.0.1:9/elsewhere" in errors
    assert "refused" not in errors
    assert "nvs_whsec_DEMO" not in errors and "vsc_whsec_DEMO" not in errors
    after = sandbox.webhooks()
    assert (after["vesicash_url"], after["novasend_url"]) == ("http://127.0.0.1:9/elsewhere", None)
