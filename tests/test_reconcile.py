"""Reconciliation over real HTTP: each kind of finding planted through the simulator's API
(a refund made directly, a second execution, a status or amount changed after the ledger
read it, a refund gone), for both providers; nothing on a clean ledger."""

from __future__ import annotations

import asyncio

import pytest

from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.reconcile import FindingKind, reconcile
from tests.test_service import PAYMENTS, REFUND_AMOUNT, _prepare

PROVIDERS = list(ProviderName)
SEEDED = {ProviderName.VESICASH: "VSC-GH-FRESH", ProviderName.NOVASEND: "tr_demo_fresh"}


async def refunded(sandbox, session, provider, reference: str | None = None):
    """A refund made by refund-tui, settled at the provider and in the ledger."""
    reference = reference or sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    attempt = await session.service.submit(prepared)
    await asyncio.sleep(sandbox.settle_seconds * 4)
    await session.service.track(force=True)
    attempt = session.ledger.get(attempt.attempt_id)
    assert attempt.status is RefundStatus.COMPLETED
    return attempt, reference


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_clean_ledger_has_no_findings(sandbox, session, provider):
    await refunded(sandbox, session, provider)
    still_in_flight = sandbox.create_payment(**PAYMENTS[provider])
    await session.service.submit(await _prepare(session.service, provider, still_in_flight, "10"))
    await asyncio.sleep(sandbox.settle_seconds * 4)  # settles at the provider, unseen by the ledger

    report = await reconcile(session.service)

    assert report.findings == [] and report.unreadable == []
    assert report.payments_checked == 2
    assert report.updated == 1  # the settled refund, recorded as news


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_refund_made_outside_refund_tui_is_missing_in_the_ledger(sandbox, session, provider):
    attempt, reference = await refunded(sandbox, session, provider)
    direct = sandbox.refund_directly(provider.value, reference, 10, "Made on the dashboard")

    [finding] = (await reconcile(session.service)).findings

    assert (finding.kind, finding.provider, finding.payment_reference) == (
        FindingKind.MISSING_IN_LEDGER, provider, reference,
    )  # fmt: skip
    assert finding.ledger is None and finding.at_provider.reference == direct
    assert finding.at_provider.amount.plain() in ("10.00", "10")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_second_execution_of_one_attempt_is_a_double_refund_and_is_flagged(sandbox, session, provider):
    attempt, reference = await refunded(sandbox, session, provider)
    second = sandbox.duplicate_refund(attempt.provider_reference)["refund_reference"]

    [finding] = (await reconcile(session.service)).findings

    assert finding.kind is FindingKind.DOUBLE_REFUND and finding.attempt_id == attempt.attempt_id
    assert (finding.ledger.reference, finding.at_provider.reference) == (attempt.provider_reference, second)
    assert session.ledger.get(attempt.attempt_id).double_refunds == (second,)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_refund_the_provider_no_longer_shows_is_missing_at_the_provider(sandbox, session, provider):
    attempt, reference = await refunded(sandbox, session, provider, SEEDED[provider])
    sandbox.reset()  # the seeded payment comes back without the refund

    [finding] = (await reconcile(session.service)).findings

    assert finding.kind is FindingKind.MISSING_AT_PROVIDER and finding.at_provider is None
    assert (finding.ledger.reference, finding.ledger.status) == (attempt.provider_reference, "completed")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_final_status_changed_after_the_ledger_read_it_is_a_status_mismatch(sandbox, session, provider):
    attempt, reference = await refunded(sandbox, session, provider)
    sandbox.amend_refund(attempt.provider_reference, status="failed", failure_reason="Charged back")

    [finding] = (await reconcile(session.service)).findings

    assert finding.kind is FindingKind.STATUS_MISMATCH
    assert (finding.ledger.status, finding.at_provider.status) == ("completed", "failed")
    assert finding.at_provider.at >= finding.ledger.at
    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.COMPLETED


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_another_amount_at_the_provider_is_an_amount_mismatch(sandbox, session, provider):
    attempt, reference = await refunded(sandbox, session, provider)
    sandbox.amend_refund(attempt.provider_reference, amount=100)

    [finding] = (await reconcile(session.service)).findings

    assert finding.kind is FindingKind.AMOUNT_MISMATCH
    assert (finding.ledger.amount, finding.at_provider.amount.plain()) == (
        attempt.amount, "100.00" if provider is ProviderName.VESICASH else "100",
    )  # fmt: skip


async def test_records_are_read_again_after_5xx_answers(sandbox, session):
    await refunded(sandbox, session, ProviderName.NOVASEND)
    sandbox.faults(fail_next=3)

    report = await reconcile(session.service)

    assert (report.payments_checked, report.unreadable, report.findings) == (1, [], [])
    assert sandbox.faults()["fail_next"] == 0
