"""Dynamically quantized torch modules (int8 `Linear`, `LSTM`, `GRU`) as plain tensors.

`torch.ao.quantization.quantize_dynamic` packs weights into TorchScript objects that neither
safetensors nor `torch.export` can hold. So the int8 values, their scales and zero points are
stored as ordinary tensors (`<module>.<weight>.int8`, `.scale`, `.zero_point`, `.axis` for per-
channel scales), and at load the module is rebuilt from its class, quantized the same way, and
given back exactly the stored int8 weights: the answers are bit-for-bit the saved module's.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from modelyard._imports import require
from modelyard.errors import UnsupportedModel

# The float module types `quantize_dynamic` replaces, by the name the settings record.
TYPES = ("Linear", "LSTM", "GRU")


@contextmanager
def quiet_ao() -> Iterator[None]:
    """torch.ao.quantization warns it is deprecated in favour of torchao, which has no dynamic
    LSTM/GRU and no fast CPU kernels without torch.compile; the eager API is still the one
    that makes CPU inference faster, so its warning is silenced where it is called."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", ".*torch.ao.quantization.*", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor, ", UserWarning)
        yield


def quantized_modules(model: Any) -> dict[str, Any]:
    """The dynamically quantized submodules of `model`, by name ("" for the model itself)."""
    dynamic = require("torch.ao.nn.quantized.dynamic", extra="torch")
    kinds = (dynamic.Linear, dynamic.LSTM, dynamic.GRU)
    return {name: module for name, module in model.named_modules() if isinstance(module, kinds)}


def quantize(model: Any, types: list[str], dtype: str = "qint8") -> Any:
    """`model` with its `types` submodules dynamically quantized (a new module)."""
    torch = require("torch", extra="torch")
    unknown = sorted(set(types) - set(TYPES))
    if unknown:
        raise UnsupportedModel(
            f"cannot quantize {unknown[0]} modules dynamically; choose from {', '.join(TYPES)}"
        )
    with quiet_ao():
        return torch.ao.quantization.quantize_dynamic(
            model, {getattr(torch.nn, name) for name in types}, dtype=getattr(torch, dtype)
        )


def quantized_state(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every tensor of a dynamically quantized `model` as a plain tensor, and the settings
    that rebuild it (the float types quantized and the dtype)."""
    modules = quantized_modules(model)
    tensors: dict[str, Any] = {}
    types: set[str] = set()
    for name, module in modules.items():
        prefix = f"{name}." if name else ""
        kind = type(module).__name__
        types.add(kind)
        if kind == "Linear":
            _put(tensors, f"{prefix}weight", module.weight())
            if module.bias() is not None:
                tensors[f"{prefix}bias"] = module.bias().detach().clone()
        else:
            packed = module._weight_bias()
            for key, value in packed["weight"].items():
                _put(tensors, f"{prefix}{key}", value)
            for key, value in packed["bias"].items():
                tensors[f"{prefix}{key}"] = value.detach().clone()
    for key, value in model.state_dict().items():
        owner = key.rpartition(".")[0]
        if not _inside(owner, modules) and hasattr(value, "dtype") and value.dtype is not None:
            tensors[key] = value
    return tensors, {"types": sorted(types), "dtype": "qint8"}


def rebuild(float_model: Any, settings: Mapping[str, Any], tensors: Mapping[str, Any]) -> Any:
    """`float_model` (built from its class) quantized as `settings` say and given the stored
    int8 weights; refuses a file whose tensors do not fit the module."""
    torch = require("torch", extra="torch")
    model = quantize(float_model, list(settings["types"]), settings.get("dtype", "qint8"))
    modules = quantized_modules(model)
    used: set[str] = set()
    with quiet_ao():
        _set_quantized(modules, tensors, used)
    # The float modules left (norms, embeddings, …) take their tensors one by one: a quantized
    # module's own `load_state_dict` wants keys that only its packed form has.
    expected = [key for key in model.state_dict() if not _inside(key.rpartition(".")[0], modules)]
    rest = {key: value for key, value in tensors.items() if key not in used}
    missing, unexpected = sorted(set(expected) - set(rest)), sorted(set(rest) - set(expected))
    if missing or unexpected:
        raise UnsupportedModel(
            f"the stored quantized weights do not fit {type(model).__qualname__}: "
            f"{(missing or unexpected)[0]!r} is {'missing' if missing else 'unexpected'}"
        )
    for key, value in rest.items():
        owner, _, attribute = key.rpartition(".")
        module = model.get_submodule(owner)
        if attribute in module._parameters:
            module._parameters[attribute] = torch.nn.Parameter(value, requires_grad=False)
        else:
            module._buffers[attribute] = value
    return model.eval()


def _set_quantized(modules: Mapping[str, Any], tensors: Mapping[str, Any], used: set[str]) -> None:
    for name, module in modules.items():
        prefix = f"{name}." if name else ""
        if type(module).__name__ == "Linear":
            bias = tensors.get(f"{prefix}bias")
            module.set_weight_bias(_take(tensors, f"{prefix}weight", used), bias)
            used.add(f"{prefix}bias")
        else:
            current = module._weight_bias()
            values = {key: _take(tensors, f"{prefix}{key}", used) for key in current["weight"]}
            for key in current["bias"]:
                values[key] = _must(tensors, f"{prefix}{key}")
                used.add(f"{prefix}{key}")
            module.set_weight_bias(values)


def _inside(owner: str, modules: Mapping[str, Any]) -> bool:
    return any(owner == name or owner.startswith(f"{name}.") for name in modules if name) or (
        "" in modules
    )


def _put(tensors: dict[str, Any], key: str, weight: Any) -> None:
    torch = require("torch", extra="torch")
    tensors[f"{key}.int8"] = weight.int_repr().contiguous()
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        tensors[f"{key}.scale"] = weight.q_per_channel_scales().to(torch.float64)
        tensors[f"{key}.zero_point"] = weight.q_per_channel_zero_points().to(torch.int64)
        tensors[f"{key}.axis"] = torch.tensor(weight.q_per_channel_axis())
    else:
        tensors[f"{key}.scale"] = torch.tensor(weight.q_scale(), dtype=torch.float64)
        tensors[f"{key}.zero_point"] = torch.tensor(weight.q_zero_point())


def _take(tensors: Mapping[str, Any], key: str, used: set[str]) -> Any:
    torch = require("torch", extra="torch")
    values = _must(tensors, f"{key}.int8")
    scale, zero = _must(tensors, f"{key}.scale"), _must(tensors, f"{key}.zero_point")
    used.update(f"{key}.{part}" for part in ("int8", "scale", "zero_point", "axis"))
    if f"{key}.axis" in tensors:
        return torch._make_per_channel_quantized_tensor(
            values, scale, zero, int(tensors[f"{key}.axis"])
        )
    return torch._make_per_tensor_quantized_tensor(values, float(scale), int(zero))


def _must(tensors: Mapping[str, Any], key: str) -> Any:
    if key not in tensors:
        raise UnsupportedModel(f"the stored quantized weights lack {key!r}")
    return tensors[key]
