"""Numbers that reach the database from a request: finite floats and 64-bit integers.

JSON parses `1e999` as infinity and `NaN` as not-a-number; neither survives a JSON column (they
come back as `null`) nor compares sensibly, so writes refuse them. SQLite and PostgreSQL store
integers in 64 bits (version numbers in 32 on PostgreSQL), and the JSON encoder too; a larger
one fails inside the driver, so it is refused before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from modelyard.errors import ConfigurationError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
"""The range of a version number (an INTEGER column: 32 bits on PostgreSQL)."""


def finite(value: Any, *, what: str) -> float:
    """`value` as a finite float, or `ConfigurationError` naming `what`."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigurationError(f"{what} must be a finite number, got {number!r}")
    return number


def finite_values(values: Mapping[str, Any], *, what: str) -> dict[str, float]:
    """Each value as a finite float (`what` names the mapping in the error: `metric`)."""
    return {str(key): finite(value, what=f"{what} {key!r}") for key, value in values.items()}


def json_numbers(value: Any, *, what: str) -> None:
    """Refuse a number a JSON column cannot hold anywhere inside `value` (dicts and lists are
    walked): a non-finite float, or an integer outside 64 bits."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigurationError(f"{what} may not hold {item!r}; numbers must be finite")
        if isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            raise ConfigurationError(f"{what} may not hold {item}; integers must fit in 64 bits")
        if isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)


def int64(value: int, *, what: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """`value` if it lies in `[low, high]` (by default the 64-bit range), else
    `ConfigurationError` naming `what` and the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"{what} must be a whole number from {low} to {high}, not {value!r}"
        )
    return value
