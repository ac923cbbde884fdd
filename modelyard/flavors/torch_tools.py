"""Torch helpers that other packages share with the torch flavor: the weights file, rebuilding a
module from its stored class, and turning inputs into the arguments of `forward`.

>>> from modelyard.flavors import torch_tools
>>> module = torch_tools.instantiate("torch.nn:Linear", {"in_features": 4, "out_features": 2})
>>> module.load_state_dict(torch_tools.load_weights(path / torch_tools.WEIGHTS_FILE, tied={}))
>>> args, kwargs = torch_tools.arguments(X, torch_tools.float_dtype(module))

The optimizer and the explainers rebuild and call stored torch modules the way loading does;
this module is what they may use of the flavor (its `_torch` module is its own). torch itself is
imported only when one of these functions runs.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import UnsupportedModel, UntrustedModel
from modelyard.flavors import _torch_sparse
from modelyard.flavors._torch_folding import drop_unread
from modelyard.flavors._torch_quantized import TYPES as QUANTIZABLE_TYPES
from modelyard.flavors._torch_quantized import quantize, quantized_modules
from modelyard.flavors._weight_only import quantize_weights

__all__ = [
    "QUANTIZABLE_TYPES",
    "SparseTensor",
    "WEIGHTS_FILE",
    "arguments",
    "batch_of_two",
    "drop_unread",
    "dynamic_batch",
    "float_dtype",
    "instantiate",
    "load_weights",
    "quantize",
    "quantize_weights",
    "quantized_modules",
    "resolve",
    "save_weights",
    "sparse_dense_bytes",
    "sparse_layout",
    "under_torch_nn",
    "untied",
]

WEIGHTS_FILE = "model.safetensors"

# The sparse layout of a weights file (see `_torch_sparse`), for readers of stored files
# (the weight diff reads a file's parts from the store, without torch).
SparseTensor = _torch_sparse.SparseTensor
sparse_layout = _torch_sparse.layout
sparse_dense_bytes = _torch_sparse.dense_bytes


def untied(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Contiguous CPU tensors that share no memory, and the names that were ties to another.

    safetensors refuses tensors that share memory: a tied tensor (the same view under two names,
    as an embedding tied to an output layer) is stored once and recorded as a tie; a tensor that
    only overlaps another one's memory is copied.
    """
    tensors: dict[str, Any] = {}
    tied: dict[str, str] = {}
    views: dict[tuple[Any, ...], str] = {}
    storages: set[int] = set()
    for name, value in state.items():
        tensor = value.detach().cpu()
        view = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.dtype,
                tuple(tensor.shape), tensor.stride())  # fmt: skip
        if view in views and tensor.numel():
            tied[name] = views[view]
            continue
        views[view] = name
        storage = tensor.untyped_storage().data_ptr()
        tensor = tensor.contiguous()
        if storage in storages and tensor.untyped_storage().data_ptr() == storage:
            tensor = tensor.clone()
        storages.add(storage)
        tensors[name] = tensor
    return tensors, tied


def save_weights(tensors: Mapping[str, Any], file: Path) -> None:
    """Write `untied` tensors to a safetensors file, those mostly zeros (pruned) sparse."""
    _torch_sparse.save(tensors, file)


def load_weights(file: Path, tied: Mapping[str, str]) -> dict[str, Any]:
    """The tensors of a safetensors file, each tie (name -> stored name) filled in again."""
    # Mapped, not read: the tensors are views of a private (copy-on-write) mapping of the file,
    # so loading copies nothing and pages are read as the model touches them; only tensors
    # stored sparse are rebuilt in memory.
    tensors = _torch_sparse.load(file)
    for name, stored in tied.items():
        tensors[name] = tensors[stored]
    return tensors


def batch_of_two(value: Any) -> Any:
    """A tensor whose batch dimension is 0 or 1, grown to 2; anything else as it is."""
    # export specializes a dimension traced at size 0 or 1, so trace the batch at size 2.
    torch = require("torch", extra="torch")
    if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] >= 2:
        return value
    if value.shape[0] == 0:
        return value.new_zeros((2, *value.shape[1:]))
    return value.expand(2, *value.shape[1:]).contiguous()


def resolve(module: str, qualname: str) -> Any:
    """The object `qualname` names in `module`, importing the module."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def under_torch_nn(module: str) -> bool:
    """Whether `module` is torch's own `torch.nn` (always allowed to rebuild from)."""
    return module == "torch.nn" or module.startswith("torch.nn.")


def instantiate(location: str, init: Mapping[str, Any]) -> Any:
    """A new `module:Class` built with `init`; only a class of a module already imported (or of
    `torch.nn`) and only a `torch.nn.Module` subclass."""
    torch = require("torch", extra="torch")
    module, _, qualname = location.partition(":")
    if module not in sys.modules and not under_torch_nn(module):
        # Callers outside `load` (explainers, optimizers) give no policy: they may rebuild a
        # class of a module already imported here, and import nothing new on a version's word.
        raise UntrustedModel(
            "the torch 'class' setting", kind="torch 'class' setting", types=[location],
            setting="trusted_modules",
        )  # fmt: skip
    try:
        cls = resolve(module, qualname)
    except (ImportError, AttributeError) as error:
        raise UnsupportedModel(
            f"cannot rebuild the torch module: {location} is not importable here ({error}); "
            "install the package that defines it"
        ) from None
    # Only a Module subclass is called: the settings could name any callable.
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)) or not isinstance(
        init, Mapping
    ):
        raise UnsupportedModel(f"{location} is not a torch.nn.Module class")
    return cls(**init)


def float_dtype(model: Any) -> Any:
    """The dtype of the model's first floating-point parameter or buffer, or None."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype
    # A module whose every weight is int8 quantized still computes in float32.
    return require("torch", extra="torch").float32 if quantized_modules(model) else None


def arguments(inputs: Any, dtype: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments: a dict gives keywords, a tuple several positionals."""
    if isinstance(inputs, Mapping):
        return (), {str(key): _tensor(value, dtype) for key, value in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(_tensor(value, dtype) for value in inputs), {}
    return (_tensor(inputs, dtype),), {}


def _tensor(value: Any, dtype: Any) -> Any:
    torch = require("torch", extra="torch")
    if isinstance(value, torch.Tensor):
        return value
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if value.dtype == np.float64 and dtype == torch.float32:
        value = value.astype(np.float32)
    if not (value.flags.writeable and value.flags.c_contiguous):
        value = np.ascontiguousarray(value).copy()  # torch warns about read-only arrays
    tensor = torch.from_numpy(value)
    if tensor.is_floating_point() and dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.to(dtype)  # NumPy has no bfloat16: a half model gets half inputs
    return tensor


def dynamic_batch(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Dim 0 of every tensor input is dynamic, by the name `forward` gives each argument."""
    torch = require("torch", extra="torch")
    bound = inspect.signature(model.forward).bind(*args, **kwargs)

    def spec(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim():
            return {0: torch.export.Dim.DYNAMIC}
        if isinstance(value, tuple | list):
            return type(value)(spec(item) for item in value)
        if isinstance(value, dict):
            return {key: spec(item) for key, item in value.items()}
        return None

    return {name: spec(value) for name, value in bound.arguments.items()}
