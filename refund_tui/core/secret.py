"""A secret string that never shows itself: not in str, repr, f-strings or tracebacks."""

from __future__ import annotations


def mask(value: str) -> str:
    """``prefix…last4`` at most; short values show nothing but their length class."""
    if len(value) < 12:
        return "…" + "*" * 4
    return f"{value[:4]}…{value[-4:]}"


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
