"""The refund engine against the simulator over real HTTP: exactly-once under faults."""

from __future__ import annotations

from datetime import timedelta

import pytest

from refund_tui.core.ledger import CapExceeded
from refund_tui.core.models import ProviderName, RefundStatus
from refund_tui.core.money import Money
from refund_tui.core.service import RefundNotAllowed
from refund_tui.core.validation import RefundInvalid

PAYMENTS = {
    ProviderName.VESICASH: dict(provider="vesicash", amount=500, currency="GHS", phone="+233241234567"),
    ProviderName.NOVASEND: dict(provider="novasend", amount=20000, currency="XOF", phone="+2250701234567"),
}
REFUND_AMOUNT = {ProviderName.VESICASH: "120.50", ProviderName.NOVASEND: "5000"}


async def _prepare(service, provider, reference, amount):
    view = await service.lookup(provider, reference)
    country = None
    if service.provider(provider).sends_phone:
        country = next(c for c in await service.countries(provider) if c.iso_code == view.country)
    return service.prepare(view, amount=amount, reason="Customer cancellation", country=country)


def executed(sandbox, reference):
    return [refund for refund in sandbox.refunds() if refund["payment_reference"] == reference]


@pytest.mark.parametrize("provider", list(ProviderName))
async def test_refund_is_recorded_before_sending_and_settles(sandbox, session, provider):
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])

    attempt = await session.service.submit(prepared)

    assert attempt.status in (RefundStatus.PENDING, RefundStatus.PROCESSING)
    assert attempt.provider_reference == executed(sandbox, reference)[0]["refund_reference"]
    events = session.ledger.events(attempt.attempt_id)
    assert [event.source for event in events][:2] == ["intent", "provider"]
    sandbox.advance(60)
    await session.service.track(force=True)
    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.COMPLETED


@pytest.mark.parametrize("provider", list(ProviderName))
async def test_dropped_connection_is_unknown_then_recovered_once(sandbox, session, provider):
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    sandbox.faults(drop_next=1)

    attempt = await session.service.submit(prepared)
    assert attempt.status is RefundStatus.UNKNOWN
    assert attempt.provider_reference is None

    results = await session.service.recover()

    assert [result.attempt.attempt_id for result in results] == [attempt.attempt_id]
    recovered = session.ledger.get(attempt.attempt_id)
    refunds = executed(sandbox, reference)
    assert len(refunds) == 1
    assert recovered.provider_reference == refunds[0]["refund_reference"]
    assert recovered.status is not RefundStatus.UNKNOWN


async def test_server_errors_then_success_make_one_novasend_refund(sandbox, session):
    provider = ProviderName.NOVASEND
    _swap_provider(session, provider, timeout=0.1)
    session.service.retry_delays = (0.01, 0.4, 0.4)
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    sandbox.faults(fail_next=2)

    attempt = await session.service.submit(prepared)

    assert attempt.status in (RefundStatus.PENDING, RefundStatus.PROCESSING)
    assert len(executed(sandbox, reference)) == 1
    sources = [event.status for event in session.ledger.events(attempt.attempt_id)]
    assert RefundStatus.UNKNOWN in sources


async def test_a_vesicash_server_error_is_never_resent_by_itself(sandbox, session):
    provider = ProviderName.VESICASH
    session.service.retry_delays = (0.01, 0.01)
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    sandbox.faults(fail_refunds_next=1)

    attempt = await session.service.submit(prepared)
    [result] = await session.service.recover()

    assert attempt.status is RefundStatus.UNKNOWN
    assert result.outcome.startswith("waiting: the payment record shows no refund tagged")
    assert "never resent automatically" in result.outcome
    assert executed(sandbox, reference) == []


@pytest.mark.parametrize("provider", list(ProviderName))
async def test_in_flight_attempts_hold_the_balance(sandbox, session, provider):
    reference = sandbox.create_payment(**PAYMENTS[provider])
    full = PAYMENTS[provider]["amount"]
    first = await _prepare(session.service, provider, reference, str(full))
    second = await _prepare(session.service, provider, reference, str(full))
    sandbox.faults(drop_next=1)
    await session.service.submit(first)  # unknown outcome: still holds the whole balance

    view = await session.service.lookup(provider, reference)
    assert view.refundable.minor == 0
    assert view.blockers
    with pytest.raises(CapExceeded):
        await session.service.submit(second)
    assert len(executed(sandbox, reference)) == 1


async def test_ledger_cap_refuses_before_sending(sandbox, session):
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND])
    prepared = await _prepare(session.service, ProviderName.NOVASEND, reference, "15000")
    again = await _prepare(session.service, ProviderName.NOVASEND, reference, "15000")
    await session.service.submit(prepared)
    with pytest.raises(CapExceeded):
        await session.service.submit(again)
    assert len(executed(sandbox, reference)) == 1


async def test_documented_rejection_fails_for_good(sandbox, session):
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND], merchant_balance=100)
    prepared = await _prepare(session.service, ProviderName.NOVASEND, reference, "5000")

    attempt = await session.service.submit(prepared)

    assert attempt.status is RefundStatus.FAILED
    assert attempt.failure_reason
    assert attempt.raw_code == "insufficient_balance"
    assert executed(sandbox, reference) == []


async def test_failed_refund_retry_is_a_new_linked_attempt(sandbox, session):
    payment = dict(PAYMENTS[ProviderName.VESICASH], phone="+233241239901")
    reference = sandbox.create_payment(**payment)
    attempt = await session.service.submit(
        await _prepare(session.service, ProviderName.VESICASH, reference, "100")
    )
    sandbox.advance(60)
    await session.service.track(force=True)
    failed = session.ledger.get(attempt.attempt_id)
    assert failed.status is RefundStatus.FAILED
    assert failed.failure_reason == "Recipient wallet not found"

    view = await session.service.lookup(ProviderName.VESICASH, reference)
    assert view.refundable == Money.from_major(500, "GHS")
    countries = await session.service.countries(ProviderName.VESICASH)
    retry = session.service.prepare(
        view, amount="100", reason="Customer cancellation", phone="0241234567",
        country=next(c for c in countries if c.iso_code == "GH"), retry_of=failed.attempt_id,
    )
    assert retry.draft.idempotency_key != failed.request.idempotency_key
    second = await session.service.submit(retry)
    assert second.retry_of == failed.attempt_id
    assert second.attempt_id != failed.attempt_id


async def test_validation_names_each_problem(sandbox, session):
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.VESICASH])
    view = await session.service.lookup(ProviderName.VESICASH, reference)
    countries = await session.service.countries(ProviderName.VESICASH)
    with pytest.raises(RefundInvalid) as raised:
        session.service.prepare(
            view, amount="600", reason=" ", phone="02412", webhook_url="http://x.example",
            country=next(c for c in countries if c.iso_code == "GH"),
        )
    problems = raised.value.problems
    assert problems["amount"] == "over the refundable balance: max 500.00 GHS"
    assert "too short" in problems["phone"]
    assert problems["reason"] == "a reason is required"
    assert "https" in problems["webhook_url"]


async def test_read_only_profile_refuses(sandbox, session):
    session.service.refunds_enabled = False
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND])
    view = await session.service.lookup(ProviderName.NOVASEND, reference)
    assert any("read-only" in blocker for blocker in view.blockers)
    with pytest.raises(RefundNotAllowed):
        session.service.prepare(view, amount="100", reason="Duplicate charge")


async def test_old_unknown_attempt_is_flagged_not_resent(sandbox, session):

    reference = sandbox.create_payment(**PAYMENTS[ProviderName.VESICASH])
    prepared = await _prepare(session.service, ProviderName.VESICASH, reference, "100")
    sandbox.faults(fail_next=1)
    attempt = await session.service.submit(prepared)
    assert attempt.status is RefundStatus.UNKNOWN
    session.service.flag_after = timedelta(0)

    [result] = await session.service.recover()

    assert result.outcome == "flagged for manual reconciliation"
    assert session.ledger.get(attempt.attempt_id).flagged
    assert executed(sandbox, reference) == []


def _swap_provider(session, name, *, timeout=None, credentials=None):
    """Replace a client: a shorter timeout, or credentials rotated since the refund was sent."""
    import dataclasses

    from refund_tui.core.secret import Secret
    from refund_tui.providers import make_provider

    current = session.service.providers[name]
    settings = dataclasses.replace(current.settings, timeout_seconds=timeout or current.settings.timeout_seconds)
    from refund_tui.sandbox import demo

    published = {
        ProviderName.VESICASH: {"public_key": demo.VESICASH_PUBLIC_KEY, "secret_key": demo.VESICASH_SECRET_KEY},
        ProviderName.NOVASEND: {"api_key": demo.NOVASEND_API_KEY, "api_client": demo.NOVASEND_API_CLIENT},
    }[name]
    secrets = {key: Secret(value) for key, value in (credentials or published).items()}
    session.service.providers[name] = make_provider(name, settings, secrets)


async def test_vesicash_timeout_is_never_resent_while_the_request_may_run(sandbox, session):
    import asyncio

    _swap_provider(session, ProviderName.VESICASH, timeout=0.3)
    session.service.retry_delays = (0.05, 0.05)
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.VESICASH])
    prepared = await _prepare(session.service, ProviderName.VESICASH, reference, "100")
    sandbox.faults(latency_ms=1000)

    attempt = await session.service.submit(prepared)  # times out; the provider is still working

    assert attempt.status is RefundStatus.UNKNOWN
    await session.service.recover()  # still inside the lease: looks, never resends
    await asyncio.sleep(1.0)
    sandbox.faults(latency_ms=0)
    [result] = await session.service.recover()
    assert len(executed(sandbox, reference)) == 1
    assert result.attempt.provider_reference == executed(sandbox, reference)[0]["refund_reference"]


async def test_concurrent_resolutions_resend_once(sandbox, session):
    import asyncio

    provider = ProviderName.NOVASEND
    reference = sandbox.create_payment(**PAYMENTS[provider])
    prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
    sandbox.faults(fail_refunds_next=1)
    attempt = await session.service.submit(prepared)  # answered 500: nothing executed
    assert attempt.status is RefundStatus.UNKNOWN
    sandbox.faults(latency_ms=200)

    await asyncio.gather(session.service.recover(), session.service.refresh(attempt.attempt_id))

    assert len(executed(sandbox, reference)) == 1


async def test_a_rejected_resend_does_not_fail_a_refund_that_may_have_executed(sandbox, session):
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND])
    prepared = await _prepare(session.service, ProviderName.NOVASEND, reference, "5000")
    sandbox.faults(drop_next=1)
    attempt = await session.service.submit(prepared)
    assert attempt.status is RefundStatus.UNKNOWN
    _swap_provider(session, ProviderName.NOVASEND, credentials={"api_key": "rotated", "api_client": "x"})

    await session.service.recover()  # 401 on the resend and on the lookup

    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.UNKNOWN
    assert len(executed(sandbox, reference)) == 1


async def test_a_failed_refund_is_retried_once(sandbox, session):
    payment = dict(PAYMENTS[ProviderName.VESICASH], phone="+233241239901")
    reference = sandbox.create_payment(**payment)
    failed = await session.service.submit(
        await _prepare(session.service, ProviderName.VESICASH, reference, "100")
    )
    sandbox.advance(60)
    await session.service.track(force=True)
    view = await session.service.lookup(ProviderName.VESICASH, reference)
    countries = await session.service.countries(ProviderName.VESICASH)
    ghana = next(c for c in countries if c.iso_code == "GH")

    def retry():
        return session.service.prepare(
            view, amount="100", reason="Customer cancellation", phone="0241234567",
            country=ghana, retry_of=failed.attempt_id,
        )

    await session.service.submit(retry())
    with pytest.raises(RefundNotAllowed, match="already retried"):
        retry()


async def test_a_reversal_after_completion_is_seen(sandbox, session):
    payment = dict(PAYMENTS[ProviderName.VESICASH], phone="+233241239905")
    reference = sandbox.create_payment(**payment)
    attempt = await session.service.submit(
        await _prepare(session.service, ProviderName.VESICASH, reference, "100")
    )
    sandbox.advance(sandbox.settle_seconds * 4)
    await session.service.track(force=True)
    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.COMPLETED

    sandbox.advance(60)
    await session.service.track(force=True)

    assert session.ledger.get(attempt.attempt_id).status is RefundStatus.REVERSED
    view = await session.service.lookup(ProviderName.VESICASH, reference)
    assert view.refundable == Money.from_major(500, "GHS")


async def test_one_broken_attempt_never_stops_the_sweep(sandbox, session):
    attempts = {}
    for provider in ProviderName:
        reference = sandbox.create_payment(**PAYMENTS[provider])
        prepared = await _prepare(session.service, provider, reference, REFUND_AMOUNT[provider])
        sandbox.faults(drop_next=1)
        attempts[provider] = await session.service.submit(prepared)
    del session.service.providers[ProviderName.VESICASH]  # removed from the config since

    results = {r.attempt.provider: r for r in await session.service.recover()}

    assert results[ProviderName.VESICASH].outcome.startswith("error: Vesicash is not configured")
    assert results[ProviderName.NOVASEND].attempt.provider_reference is not None


async def test_background_tracking_resolves_an_unknown_outcome(sandbox, session):
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND])
    prepared = await _prepare(session.service, ProviderName.NOVASEND, reference, "5000")
    sandbox.faults(drop_next=1)
    attempt = await session.service.submit(prepared)
    assert attempt.status is RefundStatus.UNKNOWN

    assert await session.service.track(force=True) == 1

    resolved = session.ledger.get(attempt.attempt_id)
    assert resolved.provider_reference == executed(sandbox, reference)[0]["refund_reference"]


async def test_what_cannot_be_refunded_shows_zero_refundable(sandbox, session):
    failed = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND], status="failed")
    old = sandbox.create_payment(**PAYMENTS[ProviderName.NOVASEND], age_days=8)
    for reference in (failed, old):
        view = await session.service.lookup(ProviderName.NOVASEND, reference)
        assert view.refundable == Money.zero("XOF") and view.blockers


async def test_a_reference_that_is_not_one_never_reaches_the_provider(session):
    from refund_tui.core.models import ProviderError

    with pytest.raises(ProviderError, match="is not a payment reference"):
        await session.service.lookup(ProviderName.VESICASH, "../../_sandbox/")


async def test_the_refund_goes_to_a_wallet_in_the_payments_country(sandbox, session):
    reference = sandbox.create_payment(**PAYMENTS[ProviderName.VESICASH])
    view = await session.service.lookup(ProviderName.VESICASH, reference)
    countries = {c.iso_code: c for c in await session.service.countries(ProviderName.VESICASH)}
    with pytest.raises(RefundInvalid) as raised:
        session.service.prepare(
            view, amount="10", reason="Overcharged", phone="+260965550101", country=countries["ZM"]
        )
    assert raised.value.problems["country"] == (
        "the payment was made in Ghana (GHS): refund to a wallet there"
    )
    other = session.service.prepare(
        view, amount="10", reason="Overcharged", phone="0245550199", country=countries["GH"]
    )
    assert other.to_another_wallet
    same = session.service.prepare(view, amount="10", reason="Overcharged", country=countries["GH"])
    assert not same.to_another_wallet
