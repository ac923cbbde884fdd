"""Model-structure changes for `diff`: the summaries flavors write into `modelyard.json` at save
time (hyper-parameters, tree counts and depths), compared key by key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
