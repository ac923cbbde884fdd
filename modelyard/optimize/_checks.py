"""How an optimization step's result is judged: the evaluation set, the metric and the limits
every step takes (`tolerance`, `max_slowdown`, `max_size_ratio`, `force`), and the rule that a
child takes and answers what its parent did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import LoadedModel, Signature, answer_for, flavor_for, get_flavor
from modelyard.optimize._measure import Metric, metric_named

MAX_SLOWDOWN = 1.5
"""A result answering more than this many times slower than its parent (at batch 1 and 64
both) is refused unless forced: latency on a shared machine varies by tens of percent, a
regression like int8 on a small CPU model (3x) does not."""


@dataclass(frozen=True)
class Check:
    """How a step's result is judged (the options every step takes)."""

    inputs: Any
    truth: Any
    metric: str
    score: Metric
    higher_is_better: bool
    tolerance: float
    force: bool
    max_slowdown: float | None
    max_size_ratio: float | None


def check_of(eval_data: Any, metric: str | Metric, options: dict[str, Any]) -> Check:
    inputs, truth = _eval_pair(eval_data)
    name, score, higher = metric_named(metric, options.get("higher_is_better"))
    tolerance = float(options.get("tolerance", 0.01))
    if not 0 <= tolerance < 1:
        raise ConfigurationError(f"tolerance must be a fraction in [0, 1), not {tolerance}")
    slowdown = _ratio(options, "max_slowdown", MAX_SLOWDOWN)
    size = _ratio(options, "max_size_ratio", None)
    force = bool(options.get("force", False))
    return Check(inputs, truth, name, score, higher, tolerance, force, slowdown, size)


def _ratio(options: dict[str, Any], key: str, default: float | None) -> float | None:
    value = options.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int | float) or value < 1:
        raise ConfigurationError(f"{key} must be a ratio of at least 1 (or None), not {value!r}")
    return float(value)


def _eval_pair(data: Any) -> tuple[Any, Any]:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise ConfigurationError("eval_data must be a pair (inputs, true values)")
    return data[0], data[1]


def answer_of(parent: LoadedModel, child: Any, flavor: str | None) -> dict[str, Any]:
    """The save option that makes an ONNX or torch child answer with its parent's outputs, in
    its parent's form, datatypes and ranks (none when it already does): a converted classifier
    also gives `probabilities`, a float16 module float16 values, and clients, shadows and the
    serving signature check compare answers by name and type."""
    kind = flavor or flavor_for(child).name
    specs = parent.signature.outputs if parent.signature is not None else []
    example = parent.input_example()
    if kind not in ("onnx", "torch") or not specs or example is None:
        return {}
    answer = answer_for(
        parent.predict(example), get_flavor(kind).predict(child, example, {}), specs
    )
    return {} if answer is None else {"answer": answer}


def check_signature(parent: LoadedModel, child: LoadedModel) -> None:
    """A child takes and answers what its parent did: a served alias can move to it."""
    if parent.signature is None or child.flavor.name not in ("onnx", "torch"):
        return
    if child.signature != parent.signature:
        raise UnsupportedModel(
            f"the {child.flavor.name} model made from {type(parent.native).__qualname__} "
            f"does not take and answer what its parent did: {_describe(child.signature)} "
            f"instead of {_describe(parent.signature)}"
        )


def _describe(signature: Signature | None) -> str:
    if signature is None:
        return "no signature"
    inputs = ", ".join(f"{s.name} {s.datatype} {s.shape}" for s in signature.inputs)
    outputs = ", ".join(f"{s.name} {s.datatype} {s.shape}" for s in signature.outputs)
    return f"({inputs}) -> ({outputs})"
