"""Transformers rows: ONNX, dynamic int8, weight-only int8/int4 of a tiny text classifier. A section of bench/optimize.py."""

from __future__ import annotations

from typing import Any


def rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    return []
