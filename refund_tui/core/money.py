"""Money as integer minor units plus an ISO 4217 currency, and strict parsing of operator text."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation
from functools import cache, total_ordering

#: Largest amount accepted from an operator or a provider, in major units.
MAX_MAJOR_UNITS = Decimal(1_000_000_000)


class MoneyError(ValueError):
    """An amount that cannot be accepted; the message is meant for the operator."""


@cache
def minor_unit_table() -> dict[str, int]:
    """Currency code -> number of decimals, read from the packaged data file."""
    import csv  # here, not at import: the console's first paint needs no currency table
    from importlib import resources

    text = resources.files("refund_tui.core").joinpath("data/currencies.csv").read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row["code"]: int(row["minor_units"]) for row in rows}


def minor_units(currency: str) -> int:
    """Decimals of ``currency``; an unknown currency is an error, never a guess."""
    try:
        return minor_unit_table()[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


@total_ordering
@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``minor`` units of ``currency`` (1,500 XOF is Money(1500, "XOF"))."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        minor_units(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def from_major(cls, value: Decimal | int | float | str, currency: str) -> Money:
        """Exact conversion from a major-unit number (a provider's JSON amount).

        Raises MoneyError when the value is not a number, is beyond ``MAX_MAJOR_UNITS`` either
        way, or has more decimals than the currency allows.
        """
        places = minor_units(currency)
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise MoneyError(f"{value!r} is not a number") from None
        if not amount.is_finite():
            raise MoneyError(f"{value!r} is not a number")
        if amount.copy_abs() > MAX_MAJOR_UNITS:
            raise MoneyError(f"{value!r} is absurdly large: over {MAX_MAJOR_UNITS:,} {currency}")
        try:
            exact = amount.quantize(Decimal(1).scaleb(-places), context=Context(traps=[Inexact]))
        except Inexact:
            raise MoneyError(_too_precise(currency, places)) from None
        return cls(int(exact.scaleb(places)), currency)

    @property
    def major(self) -> Decimal:
        """The amount in major units, exact (Decimal("12.50") for 1250 GHS minor units)."""
        places = minor_units(self.currency)
        return Decimal(self.minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))

    def wire_number(self) -> int | float:
        """The amount as a provider's JSON number: an int when whole, else a float."""
        major = self.major
        return int(major) if major == major.to_integral_value() else float(major)

    def format(self) -> str:
        """Display form: ``1,500 XOF``, ``12.50 GHS``."""
        places = minor_units(self.currency)
        return f"{self.major:,.{places}f} {self.currency}"

    def plain(self) -> str:
        """Operator-typable form without grouping: ``1500``, ``12.50``."""
        places = minor_units(self.currency)
        return f"{self.major:.{places}f}"

    def __str__(self) -> str:
        return self.format()

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor - other.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.minor < other.minor


def _too_precise(currency: str, places: int) -> str:
    if places == 0:
        return f"{currency} has no decimals: use a whole amount (2000 or 2,000)"
    return f"{currency} allows at most {places} decimals"


def parse_amount(text: str, currency: str, maximum: Money | None = None) -> Money:
    """Parse operator text such as ``"1,500"``, ``"1 500"``, ``"1500.50"`` or ``" 150 GHS"`` strictly.

    Each way the text can be wrong gets its own message; nothing is ever rounded. Whitespace
    around the amount is ignored; inside it, a space (or a no-break space) is accepted only
    as a thousands separator, under the same rule as a comma, so ``"1 5"`` is never 15.
    ``maximum`` caps the amount (the refundable balance) with a message that names it.
    """
    places = minor_units(currency)
    shown = text.strip()
    number = shown
    if number.upper().endswith(currency):
        number = number[: -len(currency)].rstrip(" ")
    if not number:
        raise MoneyError("enter an amount")
    if number.startswith("-"):
        raise MoneyError("the amount must be more than zero")
    digits = _ungrouped(number.translate(_NO_BREAK_SPACES), shown)
    if not (digits.isascii() and digits.replace(".", "", 1).isdigit()):
        raise MoneyError(f"{shown!r} is not a number")
    value = Decimal(digits)
    if value == 0:
        raise MoneyError("the amount must be more than zero")
    if value > MAX_MAJOR_UNITS:
        raise MoneyError(f"{shown} is absurdly large: over {MAX_MAJOR_UNITS:,} {currency}")
    # Strict: "2.000" may mean two thousand (a French-style separator), so extra digits after
    # the point are refused even when they are zeros; a whole-number currency takes no point.
    fraction = digits.partition(".")[2]
    if len(fraction) > places or (places == 0 and "." in digits):
        raise MoneyError(_too_precise(currency, places))
    amount = Money(int(value.scaleb(places)), currency)
    if maximum is not None and amount > maximum:
        raise MoneyError(f"over the refundable balance: max {maximum.format()}")
    return amount


#: No-break spaces (French-style grouping, as pasted from documents) count as spaces.
_NO_BREAK_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


def _ungrouped(number: str, shown: str) -> str:
    """``number`` without its thousands separators: commas or spaces, one kind, in groups of
    three (``1,500``, ``12 345.50``); any other use of either is refused."""
    separators = {char for char in number if char in ", "}
    if not separators:
        return number
    if len(separators) == 1:
        separator = separators.pop()
        if _grouping_ok(number, separator):
            return number.replace(separator, "")
    raise MoneyError(f"{shown!r} is not a number (use 1,500 or 1500.50)")


def _grouping_ok(text: str, separator: str) -> bool:
    """True when ``separator`` groups thousands properly (``1,500``, ``12,345.50``), and only there."""
    whole, _, fraction = text.partition(".")
    groups = whole.split(separator)
    return (
        separator not in fraction
        and 1 <= len(groups[0]) <= 3
        and all(len(group) == 3 for group in groups[1:])
    )
