"""Summaries of models written at save time (read back by `modelyard.diff`): hyper-parameters
as JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_PLAIN = (str, int, float, bool, type(None))


def jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Hyper-parameters with every value JSON can hold kept, and anything else as its repr."""
    clean: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if isinstance(value, float) and not math.isfinite(value):
            clean[str(key)] = repr(value)  # JSON has no NaN, and NaN != NaN would always "change"
        elif isinstance(value, _PLAIN):
            clean[str(key)] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, _PLAIN) for v in value):
            clean[str(key)] = list(value)
        else:
            clean[str(key)] = repr(value)
    return clean
