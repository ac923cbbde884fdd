"""Whether a version may replace the served one without changing what clients send or get.

A swap (an alias moving, a canary or shadow beside the served version) is refused when the
candidate takes other inputs (names, datatypes, shapes) or answers other outputs (names,
datatypes) than the served version; the operator allows it with `--allow-signature-change`.
Output shapes may differ (a longer vector of scores), since clients read them from the answer.
"""

from __future__ import annotations

from typing import Any

from modelyard.registry import ModelVersion


def signature_change(served: ModelVersion, candidate: ModelVersion) -> str:
    """What `candidate` would change for clients of `served`, in words; empty when nothing."""
    old, new = served.signature, candidate.signature
    if old is None and new is None:
        return ""
    if old is None or new is None:
        which = served if old is None else candidate
        return f"version {which.number} has no signature"
    inputs = _specs(old.get("inputs"), shapes=True), _specs(new.get("inputs"), shapes=True)
    if inputs[0] != inputs[1]:
        return f"inputs {_words(inputs[1])} instead of {_words(inputs[0])}"
    outputs = _specs(old.get("outputs"), shapes=False), _specs(new.get("outputs"), shapes=False)
    if outputs[0] != outputs[1]:
        return f"outputs {_words(outputs[1])} instead of {_words(outputs[0])}"
    return ""


def _specs(specs: Any, *, shapes: bool) -> list[tuple[str, ...]]:
    if not isinstance(specs, list):
        return []
    return [
        (str(spec.get("name")), str(spec.get("datatype")),
         *([str(spec.get("shape"))] if shapes else []))
        for spec in specs if isinstance(spec, dict)
    ]  # fmt: skip


def _words(specs: list[tuple[str, ...]]) -> str:
    return "(" + ", ".join(" ".join(spec) for spec in specs) + ")"
