"""Quantization-aware training against post-training int8, and static torch int8 (PT2E). A section of bench/optimize.py."""

from __future__ import annotations

from typing import Any


def rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    return []
