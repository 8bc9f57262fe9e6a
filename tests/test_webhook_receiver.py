"""The webhook receiver over real HTTP, writing to the ledger of refunds made on the simulator.

Each adversarial delivery is answered with the right status and leaves the ledger as it
must be: unchanged for anything unproven or malformed, at most one change per notification.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3

import httpx
import pytest

from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.notices import NoticeInbox, NoticeOutcome
from refund_tui.core.service import RefundNotAllowed
from refund_tui.ledgers.sqlite import SqliteLedger
from refund_tui.receiver import MAX_BODY_BYTES, path_for
from tests.notices import HEADERS, SECRETS, deliver, notice_body, running_receiver, signature
from tests.test_service import PAYMENTS, REFUND_AMOUNT, _prepare

PROVIDERS = list(ProviderName)


async def refund(sandbox, session, provider, **payment):
    """A refund sent to the simulator and recorded; its ledger state is left as sent."""
    reference = sandbox.create_payment(**{**PAYMENTS[provider], **payment})
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    return await session.service.submit(prepared)


def raw_signature(provider: ProviderName, body: bytes) -> str:
    return hmac.new(SECRETS[provider].encode(), body, hashlib.sha256).hexdigest()


def history(ledger: SqliteLedger, attempt_id: str) -> list[tuple[str, str]]:
    return [(event.status.value, event.source) for event in ledger.events(attempt_id)]


@pytest.fixture
def receiver(session):
    with running_receiver(session.ledger) as url:
        yield url


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_verified_notification_settles_the_refund_with_source_webhook(
    sandbox, session, receiver, provider
):
    attempt = await refund(sandbox, session, provider)
    answer = deliver(receiver, provider, notice_body(attempt, "completed"))
    assert answer.status_code == 200
    assert answer.json() == {"outcome": "applied"}
    after = session.ledger.get(attempt.attempt_id)
    assert after.status is RefundStatus.COMPLETED
    assert history(session.ledger, attempt.attempt_id)[-1] == ("completed", "webhook")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_failure_notification_records_the_reason(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "failed", failure_reason="Recipient wallet not found")
    assert deliver(receiver, provider, body).json() == {"outcome": "applied"}
    after = session.ledger.get(attempt.attempt_id)
    assert (after.status, after.failure_reason) == (RefundStatus.FAILED, "Recipient wallet not found")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_wrong_secret_is_401_logged_without_secrets_and_changes_nothing(
    sandbox, session, receiver, provider, caplog
):
    attempt = await refund(sandbox, session, provider)
    before = history(session.ledger, attempt.attempt_id)
    caplog.set_level(logging.WARNING, logger="refund_tui.webhooks")
    body = notice_body(attempt, "completed")
    answer = deliver(receiver, provider, body, secret="guessed-secret")
    assert answer.status_code == 401
    assert history(session.ledger, attempt.attempt_id) == before
    assert NoticeInbox(session.ledger).recent() == []
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"{provider.value} notification from 127.0.0.1 refused" in logged
    for secret in (SECRETS[provider], "guessed-secret", signature(provider, body, "guessed-secret")):
        assert secret not in logged


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_tampered_body_is_401(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    before = history(session.ledger, attempt.attempt_id)
    genuine = notice_body(attempt, "failed", failure_reason="Recipient wallet not found")
    forged = genuine.replace(b"failed", b"completed").replace(b"Recipient wallet not found", b"")
    assert deliver(receiver, provider, forged, signed_body=genuine).status_code == 401
    assert history(session.ledger, attempt.attempt_id) == before


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unsigned_notification_is_401(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    answer = httpx.post(
        receiver + path_for(provider),
        content=notice_body(attempt, "completed"),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 401
    assert session.ledger.get(attempt.attempt_id).status is attempt.status


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_replayed_delivery_is_acknowledged_once_and_applied_once(
    sandbox, session, receiver, provider
):
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "completed")
    assert deliver(receiver, provider, body).json() == {"outcome": "applied"}
    after_first = history(session.ledger, attempt.attempt_id)
    for _ in range(3):
        answer = deliver(receiver, provider, body)
        assert (answer.status_code, answer.json()) == (200, {"outcome": "duplicate"})
    assert history(session.ledger, attempt.attempt_id) == after_first
    assert len(NoticeInbox(session.ledger).recent()) == 1


async def test_a_second_notification_of_the_same_state_changes_nothing(sandbox, session, receiver):
    provider = ProviderName.NOVASEND  # Novasend events carry their own ids
    attempt = await refund(sandbox, session, provider)
    deliver(receiver, provider, notice_body(attempt, "completed", event_id="evt_a"))
    after_first = history(session.ledger, attempt.attempt_id)
    answer = deliver(receiver, provider, notice_body(attempt, "completed", event_id="evt_b"))
    assert answer.json() == {"outcome": "unchanged"}
    assert history(session.ledger, attempt.attempt_id) == after_first


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_late_notification_never_moves_a_final_refund_back(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    assert deliver(receiver, provider, notice_body(attempt, "completed")).json() == {"outcome": "applied"}
    assert deliver(receiver, provider, notice_body(attempt, "processing")).json() == {"outcome": "stale"}
    after = session.ledger.get(attempt.attempt_id)
    assert (after.status, after.flagged) == (RefundStatus.COMPLETED, False)
    assert [s for s, source in history(session.ledger, attempt.attempt_id) if source == "webhook"] == [
        "completed"
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_completion_notified_after_its_reversal_is_merely_late(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "reversed", failure_reason="Reversed by operator")
    assert deliver(receiver, provider, body).json() == {"outcome": "applied"}
    assert deliver(receiver, provider, notice_body(attempt, "completed")).json() == {"outcome": "stale"}
    after = session.ledger.get(attempt.attempt_id)
    assert (after.status, after.flagged) == (RefundStatus.REVERSED, False)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_failure_notified_for_a_completed_refund_flags_it(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    deliver(receiver, provider, notice_body(attempt, "completed"))
    body = notice_body(attempt, "failed", failure_reason="Recipient wallet not found")
    assert deliver(receiver, provider, body).json() == {"outcome": "conflict"}
    after = session.ledger.get(attempt.attempt_id)
    assert (after.status, after.flagged) == (RefundStatus.COMPLETED, True)
    assert "notified refund" in session.ledger.events(attempt.attempt_id)[-1].note


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_completion_notified_for_a_failed_refund_flags_it_and_blocks_its_retry(
    sandbox, session, receiver, provider
):
    """The provider paid after all: retrying the "failed" refund would pay the customer twice."""
    attempt = await refund(sandbox, session, provider)
    failed = notice_body(attempt, "failed", failure_reason="Mobile money operator timeout")
    assert deliver(receiver, provider, failed).json() == {"outcome": "applied"}
    assert deliver(receiver, provider, notice_body(attempt, "completed")).json() == {"outcome": "conflict"}
    after = session.ledger.get(attempt.attempt_id)
    assert (after.status, after.flagged) == (RefundStatus.FAILED, True)
    [conflict] = NoticeInbox(session.ledger).conflicts(attempt.attempt_id)
    assert conflict.notice.status is RefundStatus.COMPLETED
    view = await session.service.lookup(provider, attempt.payment_reference)
    with pytest.raises(RefundNotAllowed, match="contradicts this failure"):
        session.service.prepare(view, amount="1", reason="Retry", retry_of=attempt.attempt_id)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_reversal_after_completion_is_applied(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    deliver(receiver, provider, notice_body(attempt, "completed"))
    body = notice_body(attempt, "reversed", failure_reason="Reversed by operator")
    assert deliver(receiver, provider, body).json() == {"outcome": "applied"}
    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.REVERSED


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_body_is_413_and_never_stored(sandbox, session, receiver, provider, chunked):
    attempt = await refund(sandbox, session, provider)
    payload = json.loads(notice_body(attempt, "completed"))
    payload["padding"] = "x" * MAX_BODY_BYTES
    body = json.dumps(payload).encode()
    content = iter([body[i : i + 4096] for i in range(0, len(body), 4096)]) if chunked else body
    answer = httpx.post(
        receiver + path_for(provider),
        content=content,
        headers={"content-type": "application/json", "X-Signature-Value": signature(provider, body)},
    )
    assert answer.status_code == 413
    assert session.ledger.get(attempt.attempt_id).status is attempt.status
    assert NoticeInbox(session.ledger).recent() == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_non_json_is_400_when_signed_and_401_when_not(session, receiver, provider):
    body = b"<html>refund completed</html>"
    signed = deliver(receiver, provider, body)
    assert (signed.status_code, signed.json()) == (400, {"error": "the body is not JSON"})
    unsigned = deliver(receiver, provider, body, secret="wrong")
    assert unsigned.status_code == 401
    assert NoticeInbox(session.ledger).recent() == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_deeply_nested_body_is_refused_cleanly(session, receiver, provider, caplog):
    body = b"[" * 30_000 + b"]" * 30_000
    caplog.set_level(logging.WARNING, logger="refund_tui.webhooks")
    assert deliver(receiver, provider, body, secret="wrong").status_code == 401
    assert "refused" in caplog.text
    signed = deliver(receiver, provider, body, headers={HEADERS[provider]: raw_signature(provider, body)})
    assert (signed.status_code, signed.json()) == (400, {"error": "the body is not JSON"})
    assert NoticeInbox(session.ledger).recent() == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_signed_body_missing_a_field_is_400_naming_it(session, receiver, provider):
    payload = {"event": "refund.completed", "data": {"status": "successful"}}
    if provider is ProviderName.NOVASEND:
        payload = {"id": "evt_x", "type": "refund.completed", "data": {"status": "completed"}}
    answer = deliver(receiver, provider, json.dumps(payload).encode())
    assert answer.status_code == 400
    assert "notification is missing" in answer.json()["error"]
    assert NoticeInbox(session.ledger).recent() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_wrong_content_type_is_415(sandbox, session, receiver, provider, content_type):
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "completed")
    answer = deliver(receiver, provider, body, headers={"content-type": content_type})
    assert answer.status_code == 415
    assert session.ledger.get(attempt.attempt_id).status is attempt.status


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_json_with_a_charset_is_accepted(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "completed")
    answer = deliver(receiver, provider, body, headers={"content-type": "application/json; charset=utf-8"})
    assert answer.json() == {"outcome": "applied"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unknown_refund_is_accepted_and_kept(sandbox, session, receiver, provider):
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "completed", reference="REF-NOT-OURS", tagged=False)
    answer = deliver(receiver, provider, body)
    assert (answer.status_code, answer.json()) == (200, {"outcome": "kept"})
    [kept] = NoticeInbox(session.ledger).recent(kept_only=True)
    assert kept.notice.refund_reference == "REF-NOT-OURS"
    assert session.ledger.get(attempt.attempt_id).status is attempt.status


async def test_a_non_refund_event_is_acknowledged_and_ignored(session, receiver):
    payload = {"id": "evt_p", "type": "payin.success", "data": {"id": "tr_1", "status": "success"}}
    answer = deliver(receiver, ProviderName.NOVASEND, json.dumps(payload).encode())
    assert answer.json() == {"outcome": "ignored"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_notification_finds_an_unknown_attempt_by_our_tag(sandbox, session, receiver, provider):
    """The answer was lost (unknown, no reference): the notification names the refund."""
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    sandbox.faults(drop_next=1)
    attempt = await session.service.submit(prepared)
    assert (attempt.status, attempt.provider_reference) == (RefundStatus.UNKNOWN, None)
    [executed] = [r for r in sandbox.refunds() if r["payment_reference"] == reference]
    body = notice_body(attempt, "completed", reference=executed["refund_reference"])
    assert deliver(receiver, provider, body).json() == {"outcome": "applied"}
    after = session.ledger.get(attempt.attempt_id)
    assert (after.status, after.provider_reference) == (RefundStatus.COMPLETED, executed["refund_reference"])


async def test_a_second_refund_carrying_an_attempts_tag_flags_it(sandbox, session, receiver):
    provider = ProviderName.VESICASH
    attempt = await refund(sandbox, session, provider)
    body = notice_body(attempt, "completed", reference="VRF-another-one")
    assert deliver(receiver, provider, body).json() == {"outcome": "conflict"}
    after = session.ledger.get(attempt.attempt_id)
    assert after.flagged
    assert after.provider_reference == attempt.provider_reference
    assert "check for a double refund" in session.ledger.events(attempt.attempt_id)[-1].note


async def test_kept_notices_are_matched_once_the_attempt_learns_its_reference(sandbox, session, receiver):
    provider = ProviderName.VESICASH
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    sandbox.faults(drop_next=1)
    attempt = await session.service.submit(prepared)
    [executed] = [r for r in sandbox.refunds() if r["payment_reference"] == reference]
    untagged = notice_body(attempt, "completed", reference=executed["refund_reference"], tagged=False)
    assert deliver(receiver, provider, untagged).json() == {"outcome": "kept"}
    inbox = NoticeInbox(session.ledger)
    assert inbox.reconcile() == 0
    await session.service.recover()
    assert session.ledger.get(attempt.attempt_id).provider_reference == executed["refund_reference"]
    assert inbox.reconcile() == 1
    [matched] = inbox.recent()
    assert (matched.outcome, matched.attempt_id) != (NoticeOutcome.KEPT, None)
    assert inbox.recent(kept_only=True) == []
    assert inbox.reconcile() == 0


async def test_a_busy_ledger_answers_503_and_the_retry_is_applied(sandbox, session, tmp_path):
    provider = ProviderName.NOVASEND
    attempt = await refund(sandbox, session, provider)
    impatient = SqliteLedger(session.ledger.path, busy_timeout=0.1)
    blocker = sqlite3.connect(session.ledger.path, isolation_level=None)
    try:
        with running_receiver(impatient) as url:
            body = notice_body(attempt, "completed")
            blocker.execute("BEGIN IMMEDIATE")
            assert deliver(url, provider, body).status_code == 503
            blocker.execute("ROLLBACK")
            assert deliver(url, provider, body).json() == {"outcome": "applied"}
    finally:
        blocker.close()
        impatient.close()
    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.COMPLETED


async def test_the_notices_table_refuses_deletes_and_rewrites(sandbox, session, receiver):
    attempt = await refund(sandbox, session, ProviderName.NOVASEND)
    deliver(receiver, ProviderName.NOVASEND, notice_body(attempt, "completed"))
    raw = sqlite3.connect(session.ledger.path)
    try:
        for statement in ("DELETE FROM notices", "UPDATE notices SET outcome = 'kept'"):
            with pytest.raises(sqlite3.IntegrityError):
                raw.execute(statement)
    finally:
        raw.close()
