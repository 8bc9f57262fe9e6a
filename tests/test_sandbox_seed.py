"""The seeded demo world is what docs/SANDBOX.md says it is."""

from __future__ import annotations

import re
from pathlib import Path

import phonenumbers
import pytest

from refund_tui.core.models import PaymentStatus, ProviderName
from refund_tui.sandbox.demo import SEED_PAYMENTS, VESICASH_COUNTRIES
from refund_tui.sandbox.settlement import MAGIC_ENDINGS

DOCS = (Path(__file__).parents[1] / "docs" / "SANDBOX.md").read_text("utf-8")
REGION_CURRENCY = {c.country_code: c.currency_code for c in VESICASH_COUNTRIES} | {"CI": "XOF"}


@pytest.mark.parametrize("seed", SEED_PAYMENTS, ids=lambda seed: seed.reference)
def test_seeded_payment_is_documented_with_a_valid_local_mobile(seed):
    assert f"`{seed.reference}`" in DOCS
    number = phonenumbers.parse(seed.phone)
    assert phonenumbers.is_valid_number(number)
    assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    assert REGION_CURRENCY[phonenumbers.region_code_for_number(number)] == seed.currency
    for refund in seed.refunds:
        assert f"`{refund.reference}`" in DOCS


def test_every_documented_scenario_is_seeded():
    by_reference = {seed.reference: seed for seed in SEED_PAYMENTS}
    assert len(by_reference) == len(SEED_PAYMENTS)
    for provider, currencies in ((ProviderName.VESICASH, {"GHS", "ZMW"}), (ProviderName.NOVASEND, {"XOF"})):
        seeds = [s for s in SEED_PAYMENTS if s.provider is provider]
        assert {s.currency for s in seeds} == currencies
        assert any(s.status is PaymentStatus.FAILED for s in seeds)
        assert any(s.merchant_balance for s in seeds)
        assert any(
            s.refunds and sum(map(float, (r.amount for r in s.refunds))) < float(s.amount) for s in seeds
        )
        assert any(
            s.refunds and sum(map(float, (r.amount for r in s.refunds))) == float(s.amount) for s in seeds
        )
        assert {s.phone[-4:] for s in seeds} & MAGIC_ENDINGS.keys()
    assert by_reference["tr_demo_old"].age.days > 7


def test_every_reference_the_readme_mentions_exists_in_the_sandbox():
    """A newcomer copies the README's examples: each payment or refund reference must exist."""
    readme = (Path(__file__).parents[1] / "README.md").read_text("utf-8")
    shapes = r"\b(?:VSC-[A-Z0-9-]+|VRF-[A-Za-z0-9]+|(?:tr|rf)_demo_[a-z0-9_]+)"
    mentioned = set(re.findall(shapes, readme))
    seeded = {seed.reference for seed in SEED_PAYMENTS} | {
        refund.reference for seed in SEED_PAYMENTS for refund in seed.refunds
    }
    assert mentioned, "the README names no demo reference: check the pattern"
    assert mentioned <= seeded, f"not in the sandbox: {sorted(mentioned - seeded)}"
