"""Strict reading of JSON request bodies."""

from __future__ import annotations

import json
import math
from typing import Any


def json_object(raw: bytes) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is anything else."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def is_number(value: object) -> bool:
    """True for a finite JSON number (``true``/``false`` are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def has_exact_fields(
    body: dict[str, Any], required: frozenset[str], optional: frozenset[str] = frozenset()
) -> bool:
    """True when ``body`` has every required field and nothing unknown."""
    return required <= body.keys() <= required | optional
