"""Mobile-number validation, the reasons it gives, and each provider's wire format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from refund_tui.core.phone import (
    MobileNumber,
    PhoneError,
    novasend_wire,
    region_of,
    validate_mobile,
    vesicash_wire,
)

#: The markets of providers.md's phone table.
MARKETS = ["CI", "GH", "ZM", "NG", "KE", "CM", "SN"]
MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


@pytest.mark.parametrize(
    ("region", "text", "e164", "display", "carrier"),
    [
        ("GH", "024 123 4567", "+233241234567", "+233 24 123 4567", "MTN"),
        ("GH", "0241234567", "+233241234567", "+233 24 123 4567", "MTN"),
        ("GH", "+233 24 123 4567", "+233241234567", "+233 24 123 4567", "MTN"),
        ("GH", "233241234567", "+233241234567", "+233 24 123 4567", "MTN"),
        ("GH", "00233241234567", "+233241234567", "+233 24 123 4567", "MTN"),
        ("GH", "(+233) 24-123-4567", "+233241234567", "+233 24 123 4567", "MTN"),
        ("GH", "020 123 4567", "+233201234567", "+233 20 123 4567", "Telecel"),
        ("ZM", "096 8832801", "+260968832801", "+260 96 8832801", "MTN"),
        ("ZM", "+260 97 883 2801", "+260978832801", "+260 97 8832801", "Airtel"),
        ("ZM", "0958832801", "+260958832801", "+260 95 8832801", "ZAMTEL"),
        ("CI", "07 55 55 01 01", "+2250755550101", "+225 07 55 55 0101", "Orange"),
        ("CI", "+225 05 02 96 87 86", "+2250502968786", "+225 05 02 96 8786", "MTN"),
        ("CI", "2250102968786", "+2250102968786", "+225 01 02 96 8786", "Moov"),
        ("NG", "0803 123 4567", "+2348031234567", "+234 803 123 4567", "MTN"),
        ("KE", "0712 345678", "+254712345678", "+254 712 345678", "Safaricom"),
        ("CM", "6 77 12 34 56", "+237677123456", "+237 6 77 12 34 56", "MTN Cameroon"),
        ("SN", "77 123 45 67", "+221771234567", "+221 77 123 45 67", "Orange"),
        ("gh", "0241234567", "+233241234567", "+233 24 123 4567", "MTN"),
    ],
)
def test_valid_mobile_numbers(
    region: str, text: str, e164: str, display: str, carrier: str
) -> None:
    assert validate_mobile(text, region) == MobileNumber(e164, display, region.upper(), carrier)


@pytest.mark.parametrize(
    ("region", "text", "reason"),
    [
        ("GH", "", "enter a mobile number"),
        ("GH", "   ", "enter a mobile number"),
        ("GH", "abc", "not a phone number"),
        ("GH", "024 123 4567 ext 5", "not a phone number"),
        ("GH", "call 0241234567", "not a phone number"),
        ("GH", "0", "not a phone number"),
        ("GH", "024 123 456", "too short for Ghana: 9 digits expected after +233"),
        ("GH", "+233", "too short for Ghana: 9 digits expected after +233"),
        ("GH", "024 123 45678", "too long for Ghana: 9 digits expected after +233"),
        ("ZM", "0968 832 8011", "too long for Zambia: 9 digits expected after +260"),
        ("ZM", "096 883", "too short for Zambia: 9 digits expected after +260"),
        ("NG", "2340999993", "too short for Nigeria: 10 digits expected after +234"),
        ("CM", "6 77 12 34 5", "too short for Cameroon: 9 digits expected after +237"),
        ("GH", "030 234 5678", "a landline, not a mobile number"),
        ("ZM", "0211 234 567", "a landline, not a mobile number"),
        ("CI", "27 21 23 45 67", "a landline, not a mobile number"),
        ("CM", "2 22 12 34 56", "a landline, not a mobile number"),
        ("NG", "02033 12 3456", "a landline, not a mobile number"),
        ("KE", "020 2012345", "a landline, not a mobile number"),
        ("SN", "33 821 23 45", "a landline, not a mobile number"),
        ("GH", "0800 123 456", "a toll-free number, not a mobile number"),
        ("CI", "07 02 03 04", "Côte d'Ivoire numbers have 10 digits since 2021"),
        ("CI", "+225 07 02 03 04", "Côte d'Ivoire numbers have 10 digits since 2021"),
        ("GH", "+234 803 123 4567", "a Nigerian number, but this payment is in Ghana"),
        ("GH", "2348031234567", "a Nigerian number, but this payment is in Ghana"),
        ("GH", "+234", "a Nigerian number, but this payment is in Ghana"),
        ("NG", "00233241234567", "a Ghanaian number, but this payment is in Nigeria"),
        ("CI", "+237 677 12 34 56", "a Cameroonian number, but this payment is in Côte d'Ivoire"),
        ("ZM", "+225 07 55 55 01 01", "an Ivorian number, but this payment is in Zambia"),
        ("GH", "+33 6 12 34 56 78", "a FR (+33) number, but this payment is in Ghana"),
        ("GH", "+999 123", "+999 is not a country calling code"),
        ("NG", "00999 123", "+999 is not a country calling code"),
        ("GH", "1" * 300, "too long for Ghana: 9 digits expected after +233"),
        ("GH", "099 123 4567", "not a valid number for Ghana"),
        ("XX", "0241234567", "no phone numbering plan for country 'XX'"),
    ],
)
def test_reasons_a_number_is_refused(region: str, text: str, reason: str) -> None:
    with pytest.raises(PhoneError) as refused:
        validate_mobile(text, region)
    assert str(refused.value) == reason


def test_wire_formats() -> None:
    assert vesicash_wire("+233241234567") == "233241234567"
    assert novasend_wire("+2250755550101") == "+2250755550101"


@pytest.mark.parametrize("wire", [vesicash_wire, novasend_wire])
@pytest.mark.parametrize("text", ["233241234567", "+0241234567", "+233 24 123 4567", ""])
def test_wire_formats_take_only_e164(wire, text: str) -> None:
    with pytest.raises(PhoneError, match="not an E.164 number"):
        wire(text)


@pytest.mark.parametrize(
    ("number", "region"),
    [
        ("+2250755550101", "CI"),
        ("233241234567", "GH"),
        ("2340999993", "NG"),
        (" +260 96 8832801 ", "ZM"),
        ("+80012345678", None),
        ("+999123456", None),
        ("not a number", None),
        ("", None),
    ],
)
def test_region_of(number: str, region: str | None) -> None:
    assert region_of(number) == region


def test_carrier_data_loads_only_when_a_valid_number_needs_it_or_on_warm_up() -> None:
    probe = """
import json, sys
from refund_tui.core import phone

def loaded():
    return "phonenumbers.carrier" in sys.modules

states = [loaded()]
try:
    phone.validate_mobile("024 123 456", "GH")
except phone.PhoneError:
    states.append(loaded())
phone.warm_up()
states.append(loaded())
print(json.dumps(states))
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [False, False, True]


def _mobile_numbers(region: str) -> st.SearchStrategy[phonenumbers.PhoneNumber]:
    """Valid mobile numbers of ``region``: its example number with other last digits."""
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    national = phonenumbers.national_significant_number(example)

    def vary(tail: int) -> phonenumbers.PhoneNumber:
        digits = national[:-4] + f"{tail:04d}"
        return phonenumbers.parse(f"+{example.country_code}{digits}")

    def is_mobile(number: phonenumbers.PhoneNumber) -> bool:
        kind = phonenumbers.number_type(number)
        return phonenumbers.is_valid_number_for_region(number, region) and kind in MOBILE_TYPES

    return st.integers(0, 9999).map(vary).filter(is_mobile)


#: Every region phonenumbers has a mobile example for, so odd numbering plans are covered too.
ALL_MOBILE_REGIONS = sorted(
    region
    for region in phonenumbers.SUPPORTED_REGIONS
    if phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE) is not None
)
regions = st.one_of(st.sampled_from(MARKETS), st.sampled_from(ALL_MOBILE_REGIONS))
numbers_by_region = regions.flatmap(
    lambda region: st.tuples(st.just(region), _mobile_numbers(region))
)
written_forms = st.sampled_from(
    [
        PhoneNumberFormat.E164,
        PhoneNumberFormat.INTERNATIONAL,
        PhoneNumberFormat.NATIONAL,
        PhoneNumberFormat.RFC3966,
    ]
)


@given(numbers_by_region, written_forms)
def test_any_written_form_of_a_mobile_number_validates_to_it(region_number, form) -> None:
    region, number = region_number
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    text = phonenumbers.format_number(number, form)
    if form == PhoneNumberFormat.RFC3966:
        text = text.removeprefix("tel:")

    mobile = validate_mobile(text, region)

    assert (mobile.e164, mobile.region) == (e164, region)
    assert validate_mobile(mobile.display, region) == mobile


@given(numbers_by_region)
def test_wire_formats_round_trip(region_number) -> None:
    region, number = region_number
    mobile = validate_mobile(phonenumbers.format_number(number, PhoneNumberFormat.E164), region)

    assert "+" + vesicash_wire(mobile.e164) == novasend_wire(mobile.e164) == mobile.e164
    assert validate_mobile(vesicash_wire(mobile.e164), region) == mobile
    assert validate_mobile(novasend_wire(mobile.e164), region) == mobile


phone_like_text = st.one_of(
    st.text(),
    st.from_regex(r"\A\(?(\+|00)?[0-9 ().\-/]{0,20}\Z"),
    st.text(alphabet="0123456789+ -٠١٢٣", max_size=20),
)


@given(phone_like_text, st.sampled_from(MARKETS))
def test_any_text_is_a_mobile_number_or_a_phone_error(text: str, region: str) -> None:
    try:
        mobile = validate_mobile(text, region)
    except PhoneError as refused:
        assert str(refused)
    else:
        assert mobile.region == region
        assert validate_mobile(mobile.e164, region) == mobile
