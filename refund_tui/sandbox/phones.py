"""Mobile number checks the simulator applies, straight from ``phonenumbers``."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


def parse_mobile(text: str) -> str | None:
    """``+E.164`` of a valid mobile number written in any E.164 form, else None.

    Accepts ``+233 24 555 0101``, ``+233245550101`` and ``233245550101``.
    """
    cleaned = text.strip()
    if not cleaned.startswith("+"):
        cleaned = "+" + cleaned
    try:
        number = phonenumbers.parse(cleaned, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def is_wire_mobile(digits: str) -> bool:
    """True for Vesicash's wire form: a valid mobile number as E.164 digits without ``+``."""
    return digits.isascii() and digits.isdigit() and parse_mobile(digits) == "+" + digits
