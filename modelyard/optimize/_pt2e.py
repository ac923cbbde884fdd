"""Static int8 for PyTorch modules through an exported program (PT2E, from torchao).

The module is traced with `torch.export` (a dynamic batch dimension, so calibration batches of
any size pass its guards), observers are inserted by torchao's `X86InductorQuantizer` (int8
weights per output channel, uint8 activations per tensor), the caller's calibration rows run
through it in batches, and `convert_pt2e` turns the observers into int8 weight constants and
quantize/dequantize operations. The result is a graph module that the torch flavor saves as an
exported program, its int8 weights in the safetensors file.

Run eagerly, the graph computes with torch's reference quantize/dequantize operators: smaller,
not faster (often slower) than float. The speed comes from `torch.compile`, whose inductor
backend fuses them into int8 kernels; the stored version is what serving runs, eagerly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import torch_tools
from modelyard.optimize._convert import quiet_loggers

BACKEND = "x86-pt2e"
"""The quantizer's name in a version's settings: torchao's X86InductorQuantizer, default config."""
BATCH = 64


def quantize_static(module: Any, calibration: Any, *, batch: int = BATCH) -> Any:
    """An int8 graph module made from `module` (a loaded version's, in eval mode; not changed)
    and calibrated on the rows of `calibration` (an array, a tuple of arrays or a dict of them,
    rows first), `batch` at a time. Raises `UnsupportedModel` for a module `torch.export`
    cannot trace."""
    torch = require("torch", extra="torch")
    batches = list(_batches(calibration, batch))
    pt2e, convert, x86 = _torchao()
    dtype = torch_tools.float_dtype(module) or torch.float32
    graph = _exported(module, torch_tools.arguments(batches[0], dtype))
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = convert.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for rows in batches:
            args, kwargs = torch_tools.arguments(rows, dtype)
            prepared(*args, **kwargs)
    converted = convert.convert_pt2e(prepared)
    _drop_unused(converted)
    # The flavor puts a module in eval mode to trace it; an exported one refuses `.eval()`
    # unless told it may (its graph has no dropout or batch norm left to switch).
    pt2e.allow_exported_model_train_eval(converted)
    return converted


def _torchao() -> tuple[ModuleType, ModuleType, ModuleType]:
    """torchao's PT2E modules, imported quietly: its import warns about CUDA-only kernels it
    cannot load on a CPU build, and torch's inductor (which it imports) about TorchScript."""
    with _quiet_import():
        pt2e = require("torchao.quantization.pt2e", extra="optimize")
        convert = require("torchao.quantization.pt2e.quantize_pt2e", extra="optimize")
        x86 = require(
            "torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", extra="optimize"
        )
    return pt2e, convert, x86


@contextmanager
def _quiet_import() -> Iterator[None]:
    with warnings.catch_warnings(), quiet_loggers("torchao", "torch.utils._pytree"):
        warnings.filterwarnings("ignore", "`torch.jit.script_method` is deprecated")
        yield


def _batches(calibration: Any, size: int) -> Iterator[Any]:
    """`calibration` cut in batches of rows, each in the form the module takes."""
    if isinstance(calibration, Mapping):
        columns = {str(key): np.asarray(value) for key, value in calibration.items()}
    elif isinstance(calibration, tuple):
        columns = {str(index): np.asarray(value) for index, value in enumerate(calibration)}
    else:
        columns = {"": np.asarray(calibration)}
    lengths = {len(value) if value.ndim else 0 for value in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ConfigurationError(
            "calibration= must be rows of inputs (an array, or a tuple or dict of arrays with "
            "the same number of rows)"
        )
    (count,) = lengths
    for start in range(0, count, size):
        part = {key: value[start : start + size] for key, value in columns.items()}
        if isinstance(calibration, Mapping):
            yield part
        elif isinstance(calibration, tuple):
            yield tuple(part.values())
        else:
            yield part[""]


def _exported(module: Any, example: tuple[tuple[Any, ...], dict[str, Any]]) -> Any:
    """`module` traced by `torch.export` with every tensor input's batch dimension dynamic."""
    torch = require("torch", extra="torch")
    args, kwargs = example
    args = tuple(torch_tools.batch_of_two(value) for value in args)
    kwargs = {key: torch_tools.batch_of_two(value) for key, value in kwargs.items()}
    dynamic = torch_tools.dynamic_batch(module, args, kwargs)
    try:
        program = torch.export.export(module, args, kwargs, dynamic_shapes=dynamic)
    except Exception as error:  # export fails in many ways, each with its own type
        raise UnsupportedModel(
            f"static int8 of a torch module goes through torch.export, which could not trace "
            f"{type(module).__qualname__} with a dynamic batch dimension "
            f"({type(error).__name__}: {str(error).strip()[:300]}); use method='dynamic', or "
            "convert the version to ONNX and quantize that"
        ) from error
    return program.module()


def _drop_unused(graph: Any) -> None:
    """Remove the parameters and buffers the converted graph no longer reads: the float
    weights stay attached beside their int8 copies, and would be saved too."""
    graph.graph.eliminate_dead_code()
    torch_tools.drop_unread(graph)
    graph.delete_all_unused_submodules()
    graph.recompile()
