"""Text versions (the transformers flavor) as ONNX graphs, and their int8 form.

The network is exported with `torch.onnx.export` from token ids and attention mask to what the
task reads (the logits of a classifier, the token states of an encoder), with the batch and the
sequence length dynamic. Tokenizing stays in the flavor: the child version keeps the tokenizer,
config and labels beside `model.onnx`, so it takes text and answers as its parent did. int8 is
ONNX Runtime's dynamic quantization of that graph (weights int8, activations quantized per call).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import LoadedModel, transformers_tools
from modelyard.flavors.transformers_tools import FEATURES, TextModel, predict_text

INPUTS = ("input_ids", "attention_mask")
_TRACE_SHAPE = (2, 8)  # export specializes a dimension traced at size 0 or 1


def to_onnx(parent: LoadedModel, *, opset: int | None = None) -> TextModel:
    """The parent's network as an ONNX graph, with its tokenizer, task and labels; refused when
    it answers the parent's input example otherwise than the parent.

    >>> child = to_onnx(yard.load_model("sentiment@production"))
    """
    native = _native(parent)
    if native.onnx:
        raise UnsupportedModel(f"{parent.folder} is an ONNX version already")
    child = _with(native, export(native, opset=opset))
    _check_answers(parent, child)
    return child


def quantize_int8(
    parent: LoadedModel,
    *,
    dtype: str = "int8",
    method: str = "dynamic",
    per_channel: bool = False,
    scratch: Path | None = None,
) -> TextModel:
    """Dynamic int8 of the parent's ONNX graph (exported first from a torch version)."""
    from modelyard.optimize._onnx_quantize import quantize_dynamic

    if (dtype, method) != ("int8", "dynamic"):
        raise UnsupportedModel(
            f"text versions are quantized to dynamic int8 only, not {method} {dtype}"
        )
    native = _native(parent)
    if native.onnx:
        onnx = require("onnx", extra="onnx")
        graph = onnx.load(str(parent.folder / parent.info.settings["file"]))
    else:
        graph = export(native)
    return _with(native, quantize_dynamic(graph, per_channel=per_channel, scratch=scratch))


def export(native: TextModel, *, opset: int | None = None) -> Any:
    """The `onnx.ModelProto` of a text model's torch network (token ids and mask in)."""
    torch = require("torch", extra="torch")
    require("onnxscript", extra="optimize")  # what torch.onnx's exporter writes graphs with
    onnx = require("onnx", extra="onnx")
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and (type(opset) is not int or not 14 <= opset <= newest):
        raise ConfigurationError(f"opset must be an integer from 14 to {newest}, not {opset!r}")
    network = native.network
    features = native.task == FEATURES

    class Outputs(torch.nn.Module):  # type: ignore[misc,name-defined]
        """The one tensor the task reads, from the two inputs every text model takes."""

        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            output = self.network(input_ids=input_ids, attention_mask=attention_mask)
            return output.last_hidden_state if features else output.logits

    vocabulary = int(getattr(network.config, "vocab_size", 2) or 2)
    count = _TRACE_SHAPE[0] * _TRACE_SHAPE[1]
    ids = (torch.arange(count, dtype=torch.int64) % vocabulary).reshape(_TRACE_SHAPE)
    mask = torch.ones(_TRACE_SHAPE, dtype=torch.int64)
    mask[1, -2:] = 0  # a padded row, as batches have
    axes = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    with _quiet_exporter():
        try:
            program = torch.onnx.export(
                Outputs().eval(), (), kwargs={"input_ids": ids, "attention_mask": mask},
                dynamo=True, verbose=False, input_names=list(INPUTS),
                output_names=["last_hidden_state" if features else "logits"],
                opset_version=opset, dynamic_shapes={name: axes for name in INPUTS},
            )  # fmt: skip
        except Exception as error:  # the exporter fails in many ways, each with its own type
            first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise UnsupportedModel(
                f"torch.onnx cannot export {type(network).__qualname__}: "
                f"{type(error).__name__}: {first}"
            ) from error
    return _without_trace_notes(program.model_proto)


def _without_trace_notes(graph: Any) -> Any:
    """The graph without the exporter's notes on each node (the FX node, its stack trace, its
    module path): for a small model they are most of the file, and no runtime reads them."""
    for nodes in [graph.graph.node, *(function.node for function in graph.functions)]:
        for node in nodes:
            del node.metadata_props[:]
    return graph


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx's warnings and log lines (about torchvision, its own deprecations) are not
    the user's business; its errors still come through as errors."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), transformers_tools.quiet():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
            yield
    finally:
        logger.setLevel(level)


def _native(parent: LoadedModel) -> TextModel:
    if not isinstance(parent.native, TextModel):
        raise UnsupportedModel(f"{parent.folder} is not a text version (transformers flavor)")
    return parent.native


def _with(native: TextModel, graph: Any) -> TextModel:
    return TextModel(graph, native.tokenizer, native.task, native.labels, native.max_length,
                     native.config)  # fmt: skip


def _check_answers(parent: LoadedModel, child: TextModel) -> None:
    """Refuse a graph that answers the parent's input example otherwise than the parent."""
    example = parent.input_example()
    expected, answer = parent.predict(example), predict_text(child, example)
    for name, value in expected.items():
        value, got = np.asarray(value), np.asarray(answer[name])
        close = (
            np.allclose(got, value, rtol=1e-3, atol=1e-4) if value.dtype.kind == "f"
            else np.array_equal(got, value)
        )  # fmt: skip
        if not close:
            raise UnsupportedModel(
                f"the ONNX graph answers the input example otherwise than the version "
                f"({name}: {got[:3].tolist()} instead of {value[:3].tolist()})"
            )
