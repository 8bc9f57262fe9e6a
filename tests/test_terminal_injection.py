"""No terminal injection: text from a provider, a notice or the ledger reaches the operator's
terminal without escape sequences, control or bidi characters, and console text is never
read as markup. Real parts throughout: the simulator, the receiver over HTTP, CLI processes
and the console under Pilot (what its compositor would write to the terminal).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata

import httpx
import pytest
from textual import events
from textual.widgets import Input

from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.notices import NoticeInbox
from refund_tui.core.text import printable
from refund_tui.core.validation import RefundInvalid
from refund_tui.sandbox.demo import NOVASEND_API_CLIENT, NOVASEND_API_KEY
from refund_tui.tui.screens.confirm import ConfirmScreen
from tests.console import screen_text, settle, wait_for
from tests.notices import deliver, notice_body, running_receiver
from tests.test_tui_board import open_board
from tests.test_tui_details import open_details
from tests.test_tui_refund_flow import look_up, type_into
from tests.test_webhook_receiver import PROVIDERS, refund

PAYMENTS = {
    ProviderName.VESICASH: dict(provider="vesicash", amount=500, currency="GHS", phone="+233241234567"),
    ProviderName.NOVASEND: dict(provider="novasend", amount=20000, currency="XOF", phone="+2250701234567"),
}
AMOUNT = {ProviderName.VESICASH: "10", ProviderName.NOVASEND: "1500"}
REASON_REFUSED = "a reason cannot hold control characters (escape sequences, line breaks, tabs)"


def hostile(word: str) -> str:
    """``word`` then a title change (OSC), a colour (CSI), a carriage return and a bidi override."""
    return f"{word}\x1b]0;PWNED\x07 \x1b[31mred\x1b[0m\r\u202eback"


def assert_clean(text: str) -> None:
    """No control, format or surrogate character but line breaks; nothing of the OSC payload."""
    bad = {char for char in text if char != "\n" and unicodedata.category(char) in ("Cc", "Cf", "Cs")}
    assert not bad, f"terminal controls reached the output: {sorted(map(hex, map(ord, bad)))}"
    assert "PWNED" not in text


def cli(*args: str) -> subprocess.CompletedProcess:
    """``refund-tui`` in its own process, on the test's REFUND_TUI_HOME and simulator."""
    return subprocess.run(
        [sys.executable, "-m", "refund_tui", *args],
        env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_cli_shows_a_simulator_customer_name_without_its_escapes(sandbox, sandbox_env, provider):
    reference = sandbox.create_payment(**PAYMENTS[provider], customer_name=hostile("Aya"))
    base = ("refund", "--provider", provider.value, "--payment", reference, "--amount", AMOUNT[provider],
            "--reason", "Customer cancellation")  # fmt: skip
    dry = cli(*base, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "customer: Aya red back" in dry.stdout, dry.stdout.splitlines()
    assert_clean(dry.stdout + dry.stderr)
    made = cli(*base, "--yes")
    assert made.returncode == 0, made.stderr
    assert_clean(made.stdout + made.stderr)


def test_a_reason_with_control_characters_is_refused_by_the_cli(sandbox, sandbox_env):
    provider = ProviderName.NOVASEND
    reference = sandbox.create_payment(**PAYMENTS[provider])
    for reason in (hostile("Cancelled"), "Cancelled\r", "Cancelled \u202eby customer"):
        result = cli("refund", "--provider", provider.value, "--payment", reference,
                     "--amount", "100", "--reason", reason, "--yes")  # fmt: skip
        assert result.returncode == 1
        assert result.stderr.splitlines() == [f"refused: reason: {REASON_REFUSED}"]
        assert_clean(result.stdout + result.stderr)
    assert [r for r in sandbox.refunds() if r["payment_reference"] == reference] == []


async def test_the_console_shows_a_hostile_name_as_plain_text_up_to_the_confirmation(sandbox, app):
    """Escapes removed, and ``[b]...[/b]`` shown as typed, not read as markup."""
    name = hostile("Aya") + " [b]Kouassi[/b]"
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.VESICASH], customer_name=name)
    async with app.run_test(size=(100, 30)) as pilot:
        await look_up(pilot, ProviderName.VESICASH, reference)
        panel = screen_text(app)
        assert_clean(panel)
        assert "Aya red back [b]Kouassi[/b]" in panel
        await pilot.press("r")
        await settle(pilot)
        form = app.screen
        await type_into(pilot, form.query_one("#amount", Input), "10")
        await type_into(pilot, form.query_one("#reason", Input), "Overcharged")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        confirmation = screen_text(app)
        assert_clean(confirmation)
        assert "Aya red back [b]Kouassi[/b]" in confirmation


async def test_a_refund_reason_another_system_gave_the_simulator_is_shown_clean(sandbox, app):
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND])
    made_elsewhere = httpx.post(
        f"{sandbox.novasend_url}/v1/payin/{reference}/refund",
        json={"amount": 1000, "reason": hostile("Elsewhere"), "externalReference": "ext-elsewhere"},
        auth=(NOVASEND_API_KEY, NOVASEND_API_CLIENT),
        headers={"x-idempotency-key": "elsewhere-1"},
    )
    assert made_elsewhere.status_code == 200, made_elsewhere.text
    async with app.run_test(size=(100, 30)) as pilot:
        await look_up(pilot, ProviderName.NOVASEND, reference)
        await wait_for(pilot, lambda: "Elsewhere red back" in screen_text(app))
        assert_clean(screen_text(app))


async def test_a_paste_reaches_the_console_without_controls_and_the_service_refuses_them(
    sandbox, session, app
):
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND])
    async with app.run_test(size=(100, 30)) as pilot:
        await look_up(pilot, ProviderName.NOVASEND, reference)
        await pilot.press("r")
        await settle(pilot)
        field = app.screen.query_one("#reason", Input)
        field.focus()
        field.value = ""
        app.post_message(events.Paste("Duplicate\x1b]0;PWNED\x07 \u202echarge\r"))
        await wait_for(pilot, lambda: field.value != "")
        assert field.value == "Duplicate charge "
        assert_clean(screen_text(app))
    view = await session.service.lookup(ProviderName.NOVASEND, reference)
    with pytest.raises(RefundInvalid) as refused:
        session.service.prepare(view, amount="100", reason="Duplicate\x1b[31m charge")
    assert refused.value.problems == {"reason": REASON_REFUSED}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_signed_notice_with_escapes_is_shown_clean_by_the_cli_and_the_console(
    sandbox, session, app, provider
):
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "failed", failure_reason=hostile("Wallet"))
    with running_receiver(session.ledger) as url:
        assert deliver(url, provider, body).json() == {"outcome": "applied"}
        if provider is ProviderName.NOVASEND:
            other = b'{"id": "evt_odd", "type": "payin.\\u001b]0;PWNED\\u0007done", "data": {}}'
            assert deliver(url, provider, other).json() == {"outcome": "ignored"}
    recorded = session.ledger.get(attempt.attempt_id)
    assert (recorded.status, recorded.failure_reason) == (RefundStatus.FAILED, printable(hostile("Wallet")))
    [kept_verbatim] = session.ledger.query("SELECT body FROM notices WHERE body LIKE '%Wallet%'")
    assert "\\u001b]0;PWNED\\u0007" in kept_verbatim[0]  # the provider's own words, for audit

    status, notices = cli("status"), cli("webhooks", "list")
    assert status.returncode == 0 and notices.returncode == 0
    assert "Wallet red back" in status.stdout
    assert_clean(status.stdout + status.stderr + notices.stdout + notices.stderr)

    async with app.run_test(size=(120, 40)) as pilot:
        await open_board(app, pilot, 1)
        board = screen_text(app)
        assert "Wallet red" in board
        assert_clean(board)
        await open_details(app, pilot, attempt.attempt_id)
        await wait_for(pilot, lambda: "Wallet red back" in screen_text(app))
        assert_clean(screen_text(app))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_notice_whose_reference_holds_escapes_is_refused(sandbox, session, provider):
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "completed", reference="RF-1\x1b]0;PWNED\x07")
    with running_receiver(session.ledger) as url:
        answer = deliver(url, provider, body)
    assert answer.status_code == 400
    assert "invalid" in answer.json()["error"] and "reference" in answer.json()["error"]
    assert NoticeInbox(session.ledger).recent() == []


async def test_ledger_text_written_by_an_older_version_is_shown_clean(sandbox, session, app):
    """Rows from before this fix (or another writer) are cleaned where they are shown."""
    attempt = await refund(sandbox, session, ProviderName.NOVASEND)
    ledger = session.ledger
    with ledger.transaction() as conn:
        ledger.append_status(conn, attempt.attempt_id, RefundStatus.FAILED, "poll",
                             failure_reason=hostile("Legacy"))  # fmt: skip
        ledger.append_flag(conn, attempt.attempt_id, hostile("Note"))
    status, csv_export, json_export = cli("status"), cli("export"), cli("export", "--format", "json")
    assert "Legacy red back" in status.stdout and "Legacy red back" in csv_export.stdout
    assert_clean(status.stdout + status.stderr + csv_export.stdout)
    assert all(char == "\n" or (char.isascii() and char.isprintable()) for char in json_export.stdout)
    exact = {row["failure_reason"] for row in json.loads(json_export.stdout)}
    assert hostile("Legacy") in exact  # JSON keeps the ledger's words exactly, escaped
    async with app.run_test(size=(120, 40)) as pilot:
        await open_board(app, pilot, 1)
        await wait_for(pilot, lambda: "Legacy" in screen_text(app))
        assert_clean(screen_text(app))
        await open_details(app, pilot, attempt.attempt_id)
        expected = ("Legacy red back", "Note red back")
        await wait_for(pilot, lambda: all(text in screen_text(app) for text in expected))
        assert_clean(screen_text(app))
