"""Money: strict parsing of operator text, display, exact arithmetic and conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refund_tui.core.money import (
    MAX_MAJOR_UNITS,
    Money,
    MoneyError,
    minor_unit_table,
    minor_units,
    parse_amount,
)


def refused(call, *args, **kwargs) -> str:
    """The operator-facing message of the MoneyError that ``call`` raises."""
    with pytest.raises(MoneyError) as error:
        call(*args, **kwargs)
    return str(error.value)


@pytest.mark.parametrize(
    ("code", "places"),
    [("XOF", 0), ("XAF", 0), ("GHS", 2), ("NGN", 2), ("KES", 2), ("ZMW", 2), ("ZAR", 2),
     ("EGP", 2), ("UGX", 0), ("RWF", 0), ("USD", 2)],
)
def test_minor_units_follow_iso_4217(code: str, places: int) -> None:
    assert minor_units(code) == places


def test_unknown_currency_is_an_error_not_a_guess() -> None:
    assert refused(minor_units, "ABC") == "unknown currency 'ABC'"
    assert refused(Money, 100, "ABC") == "unknown currency 'ABC'"
    assert refused(parse_amount, "100", "ABC") == "unknown currency 'ABC'"


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1500", "XOF", 1500),
        ("1,500", "XOF", 1500),
        (" 1500 ", "XOF", 1500),
        ("1 500", "XOF", 1500),
        ("1\u202f500", "XOF", 1500),
        ("1\u00a0500 XOF", "XOF", 1500),
        ("1500xof", "XOF", 1500),
        ("12.50", "GHS", 1250),
        ("12.5", "GHS", 1250),
        ("12", "GHS", 1200),
        (".5", "GHS", 50),
        ("12,345.67 GHS", "GHS", 1234567),
        ("1,000,000,000", "XOF", 1_000_000_000),
    ],
)
def test_parse_amount_accepts_what_operators_type(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("", "XOF", "enter an amount"),
        ("   ", "XOF", "enter an amount"),
        ("XOF", "XOF", "enter an amount"),
        ("abc", "XOF", "'abc' is not a number"),
        ("1.2.3", "GHS", "'1.2.3' is not a number"),
        ("12e3", "GHS", "'12e3' is not a number"),
        ("\u00b2", "XOF", "'\u00b2' is not a number"),
        ("\u0661\u0665\u0660\u0660", "XOF", "'\u0661\u0665\u0660\u0660' is not a number"),
        ("1,50", "XOF", "'1,50' is not a number (use 1,500 or 1500.50)"),
        ("1500,", "XOF", "'1500,' is not a number (use 1,500 or 1500.50)"),
        ("1,500.5,0", "GHS", "'1,500.5,0' is not a number (use 1,500 or 1500.50)"),
        ("0", "XOF", "the amount must be more than zero"),
        ("0.00", "GHS", "the amount must be more than zero"),
        ("-5", "XOF", "the amount must be more than zero"),
        ("150.5", "XOF", "XOF has no decimals: use a whole amount (2000 or 2,000)"),
        ("2.000", "XOF", "XOF has no decimals: use a whole amount (2000 or 2,000)"),
        ("150.0", "XOF", "XOF has no decimals: use a whole amount (2000 or 2,000)"),
        ("2.000", "GHS", "GHS allows at most 2 decimals"),
        ("12.345", "GHS", "GHS allows at most 2 decimals"),
        ("2000000000", "XOF", "2000000000 is absurdly large: over 1,000,000,000 XOF"),
        ("1 5", "XOF", "'1 5' is not a number (use 1,500 or 1500.50)"),
        ("12\t50", "GHS", "'12\\t50' is not a number"),
        ("10 00", "XOF", "'10 00' is not a number (use 1,500 or 1500.50)"),
        ("1  500", "XOF", "'1  500' is not a number (use 1,500 or 1500.50)"),
        ("1,000 000", "XOF", "'1,000 000' is not a number (use 1,500 or 1500.50)"),
        ("1 000,50", "GHS", "'1 000,50' is not a number (use 1,500 or 1500.50)"),
        ("12.5 0", "GHS", "'12.5 0' is not a number (use 1,500 or 1500.50)"),
        ("150\tGHS", "GHS", "'150\\tGHS' is not a number"),
        ("1\n500", "XOF", "'1\\n500' is not a number"),
    ],
)
def test_parse_amount_says_what_is_wrong(text: str, currency: str, message: str) -> None:
    assert refused(parse_amount, text, currency) == message


def test_parse_amount_caps_at_the_refundable_balance() -> None:
    cap = Money(1850, "XOF")
    assert parse_amount("1,850", "XOF", maximum=cap) == cap
    assert refused(parse_amount, "1851", "XOF", maximum=cap) == (
        "over the refundable balance: max 1,850 XOF"
    )
    assert refused(parse_amount, "12.51", "GHS", maximum=Money(1250, "GHS")) == (
        "over the refundable balance: max 12.50 GHS"
    )


@pytest.mark.parametrize(
    ("money", "shown", "plain"),
    [
        (Money(1500, "XOF"), "1,500 XOF", "1500"),
        (Money(1250, "GHS"), "12.50 GHS", "12.50"),
        (Money(5, "GHS"), "0.05 GHS", "0.05"),
        (Money(123456789, "NGN"), "1,234,567.89 NGN", "1234567.89"),
        (Money(0, "KES"), "0.00 KES", "0.00"),
    ],
)
def test_display_forms(money: Money, shown: str, plain: str) -> None:
    assert (money.format(), str(money), money.plain()) == (shown, shown, plain)


def test_major_units_and_wire_numbers() -> None:
    assert Money(1250, "GHS").major == Decimal("12.50")
    assert Money(1250, "GHS").wire_number() == 12.5
    whole = Money(1200, "GHS").wire_number()
    assert whole == 12 and isinstance(whole, int)
    assert Money(1500, "XOF").wire_number() == 1500


def test_arithmetic_and_ordering() -> None:
    assert Money(1000, "XOF") + Money(500, "XOF") == Money(1500, "XOF")
    assert Money(1000, "XOF") - Money(1500, "XOF") == Money(-500, "XOF")
    assert Money(999, "GHS") < Money(1000, "GHS") <= Money(1000, "GHS")
    assert Money(1001, "GHS") > Money(1000, "GHS")
    assert Money.zero("ZMW") == Money(0, "ZMW")


@pytest.mark.parametrize(
    "combine",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a >= b,
    ],
)
def test_currencies_never_mix(combine) -> None:
    assert refused(combine, Money(100, "GHS"), Money(100, "XOF")) == "cannot combine GHS with XOF"


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (12.5, "GHS", 1250),
        ("12.50", "GHS", 1250),
        (Decimal("12.500000"), "GHS", 1250),
        (1500, "XOF", 1500),
        (1500.0, "XOF", 1500),
        (Decimal("1E+3"), "XOF", 1000),
        ("0.01", "GHS", 1),
        (-5, "GHS", -500),
        (999_999_999.99, "GHS", 99_999_999_999),
    ],
)
def test_from_major_is_exact(value, currency: str, minor: int) -> None:
    assert Money.from_major(value, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("value", "currency", "message"),
    [
        ("12.345", "GHS", "GHS allows at most 2 decimals"),
        (0.1 + 0.2, "GHS", "GHS allows at most 2 decimals"),
        ("1.0000000000000000000000000000001", "GHS", "GHS allows at most 2 decimals"),
        ("1e-999999999", "GHS", "GHS allows at most 2 decimals"),
        (150.5, "XOF", "XOF has no decimals: use a whole amount (2000 or 2,000)"),
        ("abc", "XOF", "'abc' is not a number"),
        (float("nan"), "XOF", "nan is not a number"),
        ("Infinity", "XOF", "'Infinity' is not a number"),
        ("1e30", "XOF", "'1e30' is absurdly large: over 1,000,000,000 XOF"),
        ("-1e999999999", "XOF", "'-1e999999999' is absurdly large: over 1,000,000,000 XOF"),
    ],
)
def test_from_major_refuses_what_it_cannot_hold_exactly(value, currency: str, message: str) -> None:
    assert refused(Money.from_major, value, currency) == message


currencies = st.sampled_from(sorted(minor_unit_table()))


@st.composite
def amounts(draw) -> Money:
    """Positive amounts up to MAX_MAJOR_UNITS in any currency of the table."""
    currency = draw(currencies)
    top = int(MAX_MAJOR_UNITS.scaleb(minor_units(currency)))
    return Money(draw(st.integers(1, top)), currency)


@given(amounts())
def test_displayed_and_plain_amounts_parse_back(money: Money) -> None:
    assert parse_amount(money.format(), money.currency) == money
    assert parse_amount(money.plain(), money.currency) == money


@given(amounts())
def test_provider_numbers_convert_back_exactly(money: Money) -> None:
    assert Money.from_major(money.major, money.currency) == money
    assert Money.from_major(money.wire_number(), money.currency) == money


amount_like_text = st.one_of(
    st.text(),
    st.from_regex(r"\A[-+ ]?[0-9 ,.]{0,16}( ?(XOF|GHS|xof))?\Z"),
    st.text(alphabet="0123456789,. -\u00a0\u202f\u00b2\u0661eE", max_size=16),
)


@given(amount_like_text, currencies, st.none() | amounts())
def test_any_text_is_an_amount_within_the_cap_or_a_money_error(text, currency, cap) -> None:
    maximum = Money(cap.minor, currency) if cap else None
    try:
        money = parse_amount(text, currency, maximum)
    except MoneyError as error:
        assert str(error)
    else:
        assert money.currency == currency
        assert 0 < money.major <= (maximum.major if maximum else MAX_MAJOR_UNITS)


#: What a space may be, as typed or pasted: a thousands separator and nothing else.
SPACES = " \u00a0\u202f"
whitespace = st.characters(categories=("Zs", "Zl", "Zp", "Cc")).filter(str.isspace)


@given(amounts(), st.sampled_from(SPACES))
def test_spaces_between_groups_of_three_mean_the_same_as_commas(money: Money, space: str) -> None:
    assert parse_amount(money.format().replace(",", space), money.currency) == money


@given(amounts(), whitespace, st.data())
def test_whitespace_inside_an_amount_never_changes_its_value(money: Money, blank: str, data) -> None:
    """In the form and in the typed-back confirmation alike (both read with parse_amount)."""
    from refund_tui.core.validation import amount_confirmed

    text = money.plain()
    assume(len(text) >= 2)
    at = data.draw(st.integers(1, len(text) - 1))
    typed = text[:at] + blank + text[at:]
    try:
        parsed = parse_amount(typed, money.currency)
    except MoneyError as error:
        assert str(error).startswith(f"{typed.strip()!r} is not a number")
        assert not amount_confirmed(typed, money)
    else:
        # accepted only as a thousands separator: a space with a group of three after it
        assert parsed == money and amount_confirmed(typed, money)
        assert blank in SPACES and len(text[at:].partition(".")[0]) == 3


@given(st.one_of(st.text(), st.floats(), st.decimals(), st.integers()), currencies)
def test_any_provider_value_is_money_or_a_money_error(value, currency) -> None:
    try:
        money = Money.from_major(value, currency)
    except MoneyError as error:
        assert str(error)
    else:
        assert money.major == Decimal(str(value))


@pytest.mark.parametrize(
    ("typed", "confirmed"),
    [("120", True), ("120.00", True), (" 120.0 ", True), ("120.01", False), ("12", False), ("", False), ("abc", False),
     ("1 20", False), ("12\t0", False), ("12 0", False)],
)
def test_typed_confirmation_compares_amounts_not_text(typed, confirmed):
    from refund_tui.core.validation import amount_confirmed

    assert amount_confirmed(typed, Money(12000, "GHS")) is confirmed
