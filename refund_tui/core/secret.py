"""A secret string that never shows itself: not in str, repr, f-strings or tracebacks."""

from __future__ import annotations


#: Values at least this long show ``prefix…last4``; shorter ones their length and last 2.
FULL_MASK_LENGTH = 16
#: Values this short or shorter show only their length (their last 2 would be half of them).
TINY_LENGTH = 4


def mask(value: str) -> str:
    """``sk_l…9f3a`` for 16+ characters, ``…3a (12 chars)`` below, ``(3 chars)`` for tiny ones."""
    if len(value) >= FULL_MASK_LENGTH:
        return f"{value[:4]}…{value[-4:]}"
    if len(value) > TINY_LENGTH:
        return f"…{value[-2:]} ({len(value)} chars)"
    return f"({len(value)} chars)"


class Secret:
    """Holds a credential; ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        return mask(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
