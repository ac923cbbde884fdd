"""Summaries of models for `diff`: hyper-parameters as JSON, and tree counts and depths."""

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


def summary_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Keys (hyper-parameters flattened as `hyperparameters.x`) whose values differ."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    return [
        (key, flat_a.get(key), flat_b.get(key))
        for key in sorted(flat_a.keys() | flat_b.keys())
        if flat_a.get(key) != flat_b.get(key)
    ]


def _flatten(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
