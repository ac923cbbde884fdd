"""Dequantizing a PT2E program's int8 weights once at load: the same answers, fewer operations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from modelyard.errors import UnsupportedModel
from modelyard.flavors._torch_folding import fold_dequantized_weights
from modelyard.optimize._pt2e import quantize_static
from tests.optimize.models import DigitsMLP


def _calls(module: torch.nn.Module, name: str) -> int:
    graph = module.graph  # type: ignore[union-attr]
    return sum(1 for node in graph.nodes if name in str(node.target))


def test_folding_keeps_the_answers_bit_for_bit() -> None:
    torch.manual_seed(0)
    x = torch.rand(32, 64)
    int8 = quantize_static(DigitsMLP(hidden=16, depth=2).eval(), x.numpy())
    assert _calls(int8, "dequantize_per_channel") == 3
    activations = _calls(int8, "quantize_per_tensor")
    with torch.no_grad():
        expected = int8(x).numpy()
    folded = fold_dequantized_weights(int8)
    assert _calls(folded, "dequantize_per_channel") == 0
    assert _calls(folded, "quantize_per_tensor") == activations > 0
    assert not any(t.dtype == torch.int8 for t in folded.buffers())  # the int8 copies dropped
    with torch.no_grad():
        np.testing.assert_array_equal(folded(x).numpy(), expected)


def test_a_float_module_is_left_as_it_is() -> None:
    program = torch.export.export(DigitsMLP(hidden=8).eval(), (torch.rand(2, 64),)).module()
    before = program.code
    assert fold_dequantized_weights(program).code == before


@pytest.mark.parametrize(("argument", "value"), [(3, 5), (1, "scale")])
def test_a_crafted_dequantization_is_a_typed_error(argument: int, value: Any) -> None:
    # The arguments come from the program file: an axis past the weight's dimensions, a
    # scale that is no tensor.
    int8 = quantize_static(DigitsMLP(hidden=8, depth=1).eval(), np.zeros((4, 64), np.float32))
    node = next(n for n in int8.graph.nodes if "dequantize_per_channel" in str(n.target))
    args = list(node.args)
    args[argument] = value
    node.args = tuple(args)
    with pytest.raises(UnsupportedModel, match="cannot dequantize its weights"):
        fold_dequantized_weights(int8)
