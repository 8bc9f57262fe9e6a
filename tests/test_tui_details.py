"""One refund's details: timeline, request, raw error, and copy / retry / resolve."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import httpx
import pytest
from rich.console import Console
from textual.widgets import Static

from refund_tui.core.ledger import Event
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.ledgers.sqlite import SqliteLedger
from refund_tui.tui.screens.details import DetailsScreen, timeline
from refund_tui.tui.screens.refund_form import RefundFormScreen
from tests.console import wait_for
from tests.notices import deliver, notice_body, running_receiver
from tests.test_tui_board import FAILS, STUCK, make_refund


def plain(*renderables) -> str:
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def screen_text(screen: DetailsScreen) -> str:
    """Everything the details screen says, scrolled or not, as plain text."""
    return plain(*(static.content for static in screen.query(Static)))


async def open_details(app, pilot, attempt_id: str) -> DetailsScreen:
    app.push_screen(DetailsScreen(attempt_id))
    await wait_for(
        pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details is not None
    )
    return app.screen


def executed(sandbox, payment_reference: str) -> list[dict]:
    return [r for r in sandbox.refunds() if r["payment_reference"] == payment_reference]


async def test_failed_refund_shows_reason_timeline_and_request(sandbox, session, app):
    attempt = await make_refund(sandbox, session.service, ending=FAILS)
    sandbox.advance(60)
    await session.service.track(force=True)
    secrets = httpx.get(f"{sandbox.url}/_sandbox/").json()["vesicash"]

    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_details(app, pilot, attempt.attempt_id)
        text = screen_text(screen)

    assert "!! FAILED" in text
    assert "Recipient wallet not found" in text
    for source in ("intent", "provider", "poll"):
        assert source in text
    assert "POST /v1/payment/refunds/process" in text
    assert '"momo_phone_number": "233241239901"' in text
    assert attempt.operator.name in text and attempt.operator.hostname in text
    assert "sandbox (sandbox)" in text
    assert secrets["secret_key"] not in text and secrets["public_key"] not in text
    assert screen.check_action("retry", ()) and not screen.check_action("resolve", ())


async def test_copy_takes_the_provider_reference_and_says_so(sandbox, session, app, monkeypatch):
    attempt = await make_refund(sandbox, session.service)
    toasts: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **options: toasts.append(message))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_details(app, pilot, attempt.attempt_id)
        await pilot.press("c")

    assert app.clipboard == attempt.provider_reference
    reference = attempt.provider_reference
    # the start-up recovery (off the loop) may say its word after the copy
    copies = [toast for toast in toasts if toast.startswith("Copied")]
    assert copies == [f"Copied the provider reference {reference} to your clipboard"]


async def test_retry_opens_the_refund_form_linked_to_the_failed_refund(sandbox, session, app):
    attempt = await make_refund(sandbox, session.service, ending=FAILS)
    sandbox.advance(60)
    await session.service.track(force=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_details(app, pilot, attempt.attempt_id)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, RefundFormScreen))

        assert app.screen.retry_of == attempt.attempt_id
        assert app.screen.view.payment.reference == attempt.payment_reference


async def test_retry_is_refused_for_a_refund_that_did_not_fail(sandbox, session, app):
    attempt = await make_refund(sandbox, session.service, ending=STUCK)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_details(app, pilot, attempt.attempt_id)
        await pilot.press("t")
        await pilot.pause(0.2)
        assert app.screen is screen
        assert not screen.check_action("retry", ())


async def test_no_retry_for_a_failure_the_provider_contradicted(sandbox, session, app):
    """A signed notification says the "failed" refund completed: retrying could pay twice."""
    attempt = await make_refund(sandbox, session.service, ending=FAILS)
    sandbox.advance(60)
    await session.service.track(force=True)
    failed = session.ledger.get(attempt.attempt_id)
    assert failed.status is RefundStatus.FAILED
    with running_receiver(session.ledger) as url:
        answer = deliver(url, failed.provider, notice_body(failed, "completed"))
    assert answer.json() == {"outcome": "conflict"}
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_details(app, pilot, attempt.attempt_id)
        await pilot.press("t")
        await pilot.pause(0.2)
        assert app.screen is screen
        assert not screen.check_action("retry", ())
        assert "check with the provider before any retry" in " ".join(screen_text(screen).split())


async def test_open_details_show_a_reversal_the_receiver_wrote(sandbox, session, app):
    """Final refunds are not polled; the console's watch on the ledger still shows the change."""
    attempt = await make_refund(sandbox, session.service)
    receiver_ledger = SqliteLedger(session.ledger.path)  # another connection, as another process has
    try:
        with running_receiver(receiver_ledger) as url:
            deliver(url, attempt.provider, notice_body(attempt, "completed"))
            async with app.run_test(size=(80, 24)) as pilot:
                screen = await open_details(app, pilot, attempt.attempt_id)
                assert screen.attempt.status is RefundStatus.COMPLETED
                body = notice_body(attempt, "reversed", failure_reason="Reversed by operator")
                assert deliver(url, attempt.provider, body).json() == {"outcome": "applied"}
                await wait_for(pilot, lambda: screen.attempt.status is RefundStatus.REVERSED)
                assert "Reversed by operator" in screen_text(screen)
    finally:
        receiver_ledger.close()


@pytest.mark.parametrize("provider", list(ProviderName))
async def test_resolving_an_unknown_refund_executes_it_exactly_once(
    sandbox, session, app, provider
):
    sandbox.faults(drop_next=1)
    attempt = await make_refund(sandbox, session.service, provider=provider)
    assert attempt.status is RefundStatus.UNKNOWN
    assert len(executed(sandbox, attempt.payment_reference)) == 1

    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_details(app, pilot, attempt.attempt_id)
        assert "?? UNKNOWN" in screen_text(screen)
        await pilot.press("v")
        await wait_for(pilot, lambda: screen.attempt.status is not RefundStatus.UNKNOWN)

    refunds = executed(sandbox, attempt.payment_reference)
    assert len(refunds) == 1
    resolved = session.ledger.get(attempt.attempt_id)
    assert resolved.provider_reference == refunds[0]["refund_reference"]


async def test_details_follow_a_refund_until_it_is_final(sandbox, session, fast_refresh, app):
    attempt = await make_refund(sandbox, session.service)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_details(app, pilot, attempt.attempt_id)
        await wait_for(pilot, lambda: screen.attempt.status is RefundStatus.COMPLETED)
        assert "ok completed" in screen_text(screen)


def test_provider_text_is_never_read_as_markup():
    event = Event(
        at=datetime(2025, 5, 14, 14, 2, 11, tzinfo=UTC), status=RefundStatus.UNKNOWN,
        source="provider", provider_reference=None, failure_reason=None, raw_code="[/bold]",
        raw_message=None, http_status=502, note="gateway said [red]down[/red]",
    )  # fmt: skip
    assert "gateway said [red]down[/red] - [502 [/bold]]" in plain(timeline([event]))
