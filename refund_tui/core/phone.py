"""Mobile-money numbers: strict validation with phonenumbers, and each provider's wire format.

Validation runs on every keystroke of the refund form, so it stays cheap (tens of
microseconds); phonenumbers' carrier data (about 35 ms to import) loads on first use or
ahead of time with ``warm_up``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneNumber,
    PhoneNumberFormat,
    PhoneNumberType,
    ValidationResult,
)

#: Region -> (English name, "a/an" + adjective), for the markets refunds go to and neighbours.
_COUNTRIES = {
    "CI": ("Côte d'Ivoire", "an Ivorian"),
    "CM": ("Cameroon", "a Cameroonian"),
    "EG": ("Egypt", "an Egyptian"),
    "GH": ("Ghana", "a Ghanaian"),
    "KE": ("Kenya", "a Kenyan"),
    "NG": ("Nigeria", "a Nigerian"),
    "RW": ("Rwanda", "a Rwandan"),
    "SN": ("Senegal", "a Senegalese"),
    "TZ": ("Tanzania", "a Tanzanian"),
    "UG": ("Uganda", "a Ugandan"),
    "ZA": ("South Africa", "a South African"),
    "ZM": ("Zambia", "a Zambian"),
}

#: (region, national digits) -> why that length is wrong, where the metadata cannot say it.
_LENGTH_NOTES = {("CI", 8): "Côte d'Ivoire numbers have 10 digits since 2021"}

_NOT_MOBILE = {
    PhoneNumberType.FIXED_LINE: "a landline, not a mobile number",
    PhoneNumberType.TOLL_FREE: "a toll-free number, not a mobile number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number, not a mobile number",
    PhoneNumberType.VOIP: "an internet (VoIP) number, not a mobile number",
}
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
#: Region codes phonenumbers uses for "no country" (unknown, and +800-style global services).
_NO_COUNTRY = (phonenumbers.UNKNOWN_REGION, phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY)

#: What an operator may type or paste: digits, an optional leading +, usual separators.
_SHAPE = re.compile(r"\(?\+?[\d\s().\-/]+")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


class PhoneError(ValueError):
    """A number that cannot receive a refund; the message is the reason, for the operator."""


@dataclass(frozen=True, slots=True)
class MobileNumber:
    """A valid mobile number: ``+233241234567``, shown as ``+233 24 123 4567``."""

    e164: str
    display: str
    region: str
    #: Operator of the original allocation (a hint only: numbers can be ported).
    carrier: str | None


@dataclass(frozen=True, slots=True)
class _Market:
    """What a region's numbering plan says, for parsing and for messages."""

    region: str
    name: str
    calling_code: int
    mobile_lengths: tuple[int, ...]
    #: Longest national input, trunk prefix included (``0241234567`` in Ghana).
    longest_national: int

    def expects(self) -> str:
        counts = [str(length) for length in self.mobile_lengths]
        listed = counts[0] if len(counts) == 1 else f"{', '.join(counts[:-1])} or {counts[-1]}"
        return f"{listed} digits expected after +{self.calling_code}"


def validate_mobile(text: str, region: str) -> MobileNumber:
    """Parse ``text`` (local ``024 123 4567`` or international ``+233…``/``233…``/``00233…``)
    as a mobile number of ``region`` (ISO 3166 alpha-2).

    Raises PhoneError with the exact reason when it is not one.
    """
    market = _market(region.upper())
    cleaned = text.strip()
    if not cleaned:
        raise PhoneError("enter a mobile number")
    if not _SHAPE.fullmatch(cleaned):
        raise PhoneError("not a phone number")
    digits = phonenumbers.normalize_digits_only(cleaned)
    candidates = _candidates(cleaned, digits, market)
    readings: list[PhoneNumber] = []
    errors: list[NumberParseException] = []
    for candidate in candidates:
        try:
            readings.append(phonenumbers.parse(candidate, market.region))
        except NumberParseException as error:
            errors.append(error)
    if not readings:
        typed_international = "+" in cleaned or digits.startswith("00")
        raise _unparsable(errors[0], candidates[-1][1:] if typed_international else "", market)
    # Ties go to the last reading: digits that start with the calling code are international.
    number = max(reversed(readings), key=lambda reading: _rank(reading, market))
    return _accept(number, market)


def country_name(region: str) -> str:
    """English name of a country we refund to, else its code."""
    return _COUNTRIES.get(region, (region, ""))[0]


def region_of(number: str) -> str | None:
    """The country of an international number (``+2250755550101`` or ``233241234567``).

    None when it is not a number with a known calling code.
    """
    try:
        parsed = phonenumbers.parse("+" + number.strip().lstrip("+"))
    except NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    return None if region in (None, *_NO_COUNTRY) else region


def vesicash_wire(e164: str) -> str:
    """Vesicash's ``momo_phone_number``: digits without ``+`` (``233241234567``)."""
    return _checked_e164(e164)[1:]


def novasend_wire(e164: str) -> str:
    """Novasend's form: E.164 with ``+`` (``+233241234567``)."""
    return _checked_e164(e164)


def warm_up() -> None:
    """Load the carrier data now, so the first valid keystroke does not wait for it."""
    _carrier_names()


@cache
def _market(region: str) -> _Market:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise PhoneError(f"no phone numbering plan for country {region!r}")
    lengths = tuple(metadata.mobile.possible_length or metadata.general_desc.possible_length)
    return _Market(
        region=region,
        name=_COUNTRIES.get(region, (region, ""))[0],
        calling_code=metadata.country_code,
        mobile_lengths=lengths,
        longest_national=max(lengths) + len(metadata.national_prefix or ""),
    )


def _candidates(cleaned: str, digits: str, market: _Market) -> list[str]:
    """Ways to read the input; digits without ``+`` may still be international."""
    if "+" in cleaned:
        return ["+" + digits]
    if digits.startswith("00"):
        return [digits, "+" + digits[2:]]
    if digits.startswith(str(market.calling_code)) or len(digits) > market.longest_national:
        return [digits, "+" + digits]
    return [digits]


def _rank(number: PhoneNumber, market: _Market) -> tuple[bool, bool, bool]:
    """Best reading first: valid here, then valid anywhere, then at least this country's code."""
    valid = phonenumbers.is_valid_number(number)
    home = number.country_code == market.calling_code
    return (valid and home, valid, home)


def _accept(number: PhoneNumber, market: _Market) -> MobileNumber:
    if number.country_code != market.calling_code:
        raise _elsewhere(number.country_code, market)
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(_invalid_reason(number, market))
    if not phonenumbers.is_valid_number_for_region(number, market.region):
        raise _elsewhere(number.country_code, market, phonenumbers.region_code_for_number(number))
    kind = phonenumbers.number_type(number)
    if kind not in _MOBILE_TYPES:
        raise PhoneError(_NOT_MOBILE.get(kind, "not a mobile number"))
    return MobileNumber(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        display=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        region=market.region,
        carrier=_carrier_names().name_for_valid_number(number, "en") or None,
    )


def _invalid_reason(number: PhoneNumber, market: _Market) -> str:
    national = phonenumbers.national_significant_number(number)
    note = _LENGTH_NOTES.get((market.region, len(national)))
    if note:
        return note
    length = phonenumbers.is_possible_number_for_type_with_reason(number, PhoneNumberType.MOBILE)
    if length in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        return f"too short for {market.name}: {market.expects()}"
    if length == ValidationResult.TOO_LONG:
        return f"too long for {market.name}: {market.expects()}"
    if length == ValidationResult.INVALID_LENGTH:
        return f"wrong length for {market.name}: {market.expects()}"
    return f"not a valid number for {market.name}"


def _unparsable(error: NumberParseException, international: str, market: _Market) -> PhoneError:
    """Explain a parse failure; ``international`` holds the digits typed after ``+``/``00``."""
    code = _calling_code(international)
    if code and code != market.calling_code:
        return _elsewhere(code, market)
    if error.error_type in (
        NumberParseException.TOO_SHORT_NSN,
        NumberParseException.TOO_SHORT_AFTER_IDD,
    ):
        return PhoneError(f"too short for {market.name}: {market.expects()}")
    if error.error_type == NumberParseException.TOO_LONG:
        return PhoneError(f"too long for {market.name}: {market.expects()}")
    if len(international) >= 3 and not code:
        return PhoneError(f"+{international[:3]} is not a country calling code")
    return PhoneError("not a phone number")


def _elsewhere(calling_code: int, market: _Market, region: str | None = None) -> PhoneError:
    """The number belongs to another country (by default the main one of its calling code)."""
    region = region or phonenumbers.region_code_for_country_code(calling_code)
    if region in _COUNTRIES:
        origin = _COUNTRIES[region][1]
    elif region in _NO_COUNTRY:
        origin = f"a +{calling_code}"
    else:
        origin = f"a {region} (+{calling_code})"
    return PhoneError(f"{origin} number, but this payment is in {market.name}")


def _calling_code(digits: str) -> int:
    """The calling code ``digits`` start with (codes are prefix-free), or 0."""
    if digits.startswith("0"):
        return 0
    for prefix in (digits[:1], digits[:2], digits[:3]):
        if prefix and int(prefix) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return int(prefix)
    return 0


def _checked_e164(e164: str) -> str:
    if not _E164.fullmatch(e164):
        raise PhoneError(f"not an E.164 number: {e164!r}")
    return e164


@cache
def _carrier_names() -> ModuleType:
    from phonenumbers import carrier

    return carrier
