"""Weight-only int8 and int4 Linear layers (`_weight_only_linear`), made, saved and loaded for
the torch and transformers flavors.

A weight-only model is stored as plain tensors in one safetensors file: each quantized layer
as `<layer>.weight_int8` (int8) and `<layer>.weight_scale`, or `<layer>.weight_int4` (uint8,
two values a byte), `.weight_scale` and `.weight_zero`, with its float `<layer>.bias`; every
other tensor as it is. The settings (`"weight_only": {"dtype", "group_size", "layers",
"tied"}`) name the quantized layers. Loading rebuilds the module from its class (torch) or
its class and config (transformers), swaps those layers for `WeightOnlyLinear`s and gives
every tensor back, after checking each name, dtype and shape against the rebuilt module and
what the kernels accept: the file is the registrant's, so a wrong one is refused, never run.
No pickle, no code from the folder.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UnsupportedModel

DTYPES = ("int8", "int4")
GROUP_SIZES = (32, 64, 128, 256)
"""The int4 group sizes torch's CPU kernel takes (input columns sharing a scale and a zero)."""
DEFAULT_GROUP_SIZE = 128  # torchao's default for int4 weight-only
TEXT_FILE = "weight-only.safetensors"
"""A transformers version's weights: not `model.safetensors`, which Hugging Face would load
into a float model and silently leave the quantized layers random."""
_BLOCK = 16  # see _fits
_NEEDS = {
    "int8": f"int8 needs inputs that are a multiple of {_BLOCK}",
    "int4": f"int4 needs inputs that are a multiple of the group size ({{group}}) and outputs "
    f"a multiple of {_BLOCK}",
}
_FLOATS = ("float32", "float16", "bfloat16")
_SETTINGS = frozenset({"dtype", "group_size", "layers", "tied", "file"})


def quantize_weights(
    module: Any, *, dtype: str, group_size: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """A copy of `module` whose `nn.Linear` layers keep int8 or int4 weights, and what was
    done (`layers` quantized; `kept_float`, the layers the kernels cannot take: int8 needs an
    input width that is a multiple of 16, int4 one that is a multiple of the group size and an
    output width that is a multiple of 16; and the int4 `group_size`, given or the default).

    >>> child, done = quantize_weights(mlp, dtype="int4", group_size=32)
    """
    torch = require("torch", extra="torch")
    group = _group_size(dtype, group_size)
    _check_kernel(dtype)
    from modelyard.flavors._weight_only_linear import WeightOnlyLinear, from_linear

    if any(isinstance(sub, WeightOnlyLinear) for sub in module.modules()):
        raise UnsupportedModel("this model's Linear layers are weight-only quantized already")
    quantized = copy.deepcopy(module).eval()
    done, kept = 0, 0
    for name, layer in list(quantized.named_modules()):
        if type(layer) is not torch.nn.Linear or not name:  # a bare Linear has no class to rebuild
            continue
        if not _fits(dtype, layer.in_features, layer.out_features, group):
            kept += 1
            continue
        _replace(quantized, name, from_linear(layer, dtype, group))
        done += 1
    if not done:
        raise UnsupportedModel(_nothing_to_quantize(module, dtype, group, kept))
    done_with = {"layers": done, "kept_float": kept}
    return quantized, done_with if group is None else {"group_size": group, **done_with}


def weight_only_layers(model: Any) -> dict[str, Any]:
    """The weight-only layers of a torch module, by name."""
    from modelyard.flavors._weight_only_linear import WeightOnlyLinear

    return {name: sub for name, sub in model.named_modules() if isinstance(sub, WeightOnlyLinear)}


def save_weights(model: Any, file: Path) -> dict[str, Any]:
    """Write a weight-only model's tensors to `file`; return its `weight_only` settings."""
    from modelyard.flavors.torch_tools import untied

    layers = weight_only_layers(model)
    kinds = {(layer.kind, layer.group_size) for layer in layers.values()}
    if len(kinds) != 1:
        raise ConfigurationError("a model's weight-only layers must share one dtype and group")
    (kind, group), = kinds  # fmt: skip
    tensors, tied = untied(model.state_dict())
    require("safetensors.torch", extra="torch").save_file(tensors, str(file))
    return {"dtype": kind, "group_size": group, "layers": sorted(layers), "tied": tied}


def save_text(network: Any, path: Path) -> dict[str, Any]:
    """A transformers network with weight-only layers: its config and `TEXT_FILE`."""
    network.config.save_pretrained(path)
    return {**save_weights(network, path / TEXT_FILE), "file": TEXT_FILE}


def load_weights(file: Path, settings: Any, build: Callable[[], Any], *, where: Path) -> Any:
    """The module `build()` makes, with the layers `settings` name made weight-only and every
    tensor of `file` given back; refused (`UnsupportedModel`) unless all of it fits."""
    torch = require("torch", extra="torch")
    checked = check_settings(settings, where=where)
    _check_kernel(checked["dtype"])
    tensors = _read(file, checked["tied"])
    try:
        with torch.device("meta"):  # shapes first, on no memory: then a real build fits them
            probe = build()
        _fill(probe, checked, tensors, where=where)
        if not any(t.is_meta for t in [*probe.parameters(), *probe.buffers()]):
            return probe.eval()
    except (NotImplementedError, RuntimeError):  # a constructor that computes on its tensors
        pass
    module = build()
    _fill(module, checked, tensors, where=where)
    return module.eval()


def load_text(path: Path, cls: Any, settings: Any) -> Any:
    """A transformers network of class `cls` (checked by the flavor) from its config and the
    weight-only tensors; nothing is initialized that the tensors then replace."""
    from modelyard.flavors._paths import inside

    if not isinstance(settings, Mapping):
        raise UnsupportedModel(f"{path}: the 'weight_only' setting must be a mapping")
    file = inside(path, settings.get("file"), setting="weight_only.file")
    try:
        config = cls.config_class.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise UnsupportedModel(f"{path}: cannot load config.json: {error}") from None

    def build() -> Any:
        with _no_init():
            return cls(config)

    return load_weights(file, settings, build, where=path)


def check_settings(settings: Any, *, where: Path) -> dict[str, Any]:
    """The `weight_only` settings, refused unless each has the form it must."""

    def refuse(problem: str) -> UnsupportedModel:
        return UnsupportedModel(f"{where}: the 'weight_only' setting {problem}")

    if not isinstance(settings, Mapping):
        raise refuse("must be a mapping")
    unknown = sorted(str(key) for key in set(settings) - _SETTINGS)
    if unknown:
        raise refuse(f"has an unknown key {unknown[0]!r}")
    dtype, group = settings.get("dtype"), settings.get("group_size")
    if dtype not in DTYPES:
        raise refuse(f"names dtype {dtype!r}, not one of {', '.join(DTYPES)}")
    if dtype == "int8" and group is not None:
        raise refuse("gives int8 a group size (int8 has one scale per output channel)")
    if dtype == "int4" and (type(group) is not int or group not in GROUP_SIZES):
        raise refuse(f"gives int4 group size {group!r}, not one of {GROUP_SIZES}")
    layers = settings.get("layers")
    if not isinstance(layers, list) or not layers or not all(_name(n) for n in layers):
        raise refuse("'layers' must be a list of module names like 'encoder.0.dense'")
    if len(set(layers)) != len(layers):
        raise refuse("names a layer twice")
    tied = settings.get("tied", {})
    if not isinstance(tied, Mapping) or not all(_name(k) and _name(v) for k, v in tied.items()):
        raise refuse("'tied' must map tensor names to tensor names")
    return {"dtype": dtype, "group_size": group, "layers": list(layers), "tied": dict(tied)}


# loading ------------------------------------------------------------------------------------------


def _read(file: Path, tied: Mapping[str, str]) -> dict[str, Any]:
    safetensors = require("safetensors", extra="torch")
    try:
        tensors: dict[str, Any] = require("safetensors.torch", extra="torch").load_file(str(file))
    except (OSError, safetensors.SafetensorError) as error:
        raise UnsupportedModel(f"{file}: not a readable safetensors file: {error}") from None
    for name, stored in tied.items():
        if stored not in tensors or name in tensors:
            raise UnsupportedModel(f"{file}: the tie {name!r} -> {stored!r} does not fit the file")
        tensors[name] = tensors[stored]
    return tensors


def _fill(
    module: Any, settings: Mapping[str, Any], tensors: Mapping[str, Any], *, where: Path
) -> None:
    """Swap in the weight-only layers and give every other tensor back, checking each."""
    used: set[str] = set()
    for name in settings["layers"]:
        linear = _linear(module, name, where)
        _replace(module, name, _layer(name, linear, settings, tensors, used, where))
    expected = {key: value for key, value in module.state_dict().items() if key not in used}
    rest = {key: value for key, value in tensors.items() if key not in used}
    missing, unexpected = (
        sorted(expected.keys() - rest.keys()),
        sorted(rest.keys() - expected.keys()),
    )
    if missing or unexpected:
        raise UnsupportedModel(
            f"{where}: the weight-only tensors do not fit {type(module).__qualname__}: "
            f"{(missing or unexpected)[0]!r} is {'missing' if missing else 'unexpected'}"
        )
    for key, value in rest.items():
        want = expected[key]
        if tuple(value.shape) != tuple(want.shape) or (
            value.dtype != want.dtype
            and not (value.is_floating_point() and want.is_floating_point())
        ):
            raise UnsupportedModel(
                f"{where}: tensor {key!r} is {_kind(value)} {list(value.shape)}, the model "
                f"takes {_kind(want)} {list(want.shape)}"
            )
    module.load_state_dict(rest, strict=False, assign=True)


def _linear(module: Any, name: str, where: Path) -> Any:
    torch = require("torch", extra="torch")
    try:
        layer = module.get_submodule(name)
    except AttributeError:
        layer = None
    if type(layer) is not torch.nn.Linear:
        raise UnsupportedModel(
            f"{where}: the 'weight_only' setting names {name!r}, which is not a Linear layer "
            f"of {type(module).__qualname__}"
        )
    return layer


def _layer(
    name: str,
    linear: Any,
    settings: Mapping[str, Any],
    tensors: Mapping[str, Any],
    used: set[str],
    where: Path,
) -> Any:
    """One `WeightOnlyLinear` from its stored tensors, each checked against the Linear it
    stands for and against what the kernel accepts."""
    torch = require("torch", extra="torch")
    from modelyard.flavors._weight_only_linear import WeightOnlyLinear

    rows, columns = linear.out_features, linear.in_features
    dtype, group = settings["dtype"], settings["group_size"]
    if not _fits(dtype, columns, rows, group):
        raise UnsupportedModel(f"{where}: layer {name!r} ({columns} -> {rows}) cannot be {dtype}: "
                               f"{_NEEDS[dtype].format(group=group)}")  # fmt: skip

    def take(part: str, kinds: tuple[str, ...], shape: tuple[int, ...]) -> Any:
        key = f"{name}.{part}"
        value = tensors.get(key)
        if value is None:
            raise UnsupportedModel(f"{where}: the weight-only tensor {key!r} is missing")
        if _kind(value) not in kinds or tuple(value.shape) != shape:
            raise UnsupportedModel(
                f"{where}: tensor {key!r} is {_kind(value)} {list(value.shape)}; layer {name!r} "
                f"({columns} -> {rows}) needs {' or '.join(kinds)} {list(shape)}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UnsupportedModel(f"{where}: tensor {key!r} holds infinities or NaNs")
        used.add(key)
        return value

    if dtype == "int8":
        values = take("weight_int8", ("int8",), (rows, columns))
        scale = take("weight_scale", _FLOATS, (rows,))
        zero = None
    else:
        values = take("weight_int4", ("uint8",), (rows, columns // 2))
        scale = take("weight_scale", _FLOATS, (rows, columns // group))
        zero = take("weight_zero", (_kind(scale),), tuple(scale.shape))
    bias = take("bias", (_kind(scale),), (rows,)) if linear.bias is not None else None
    if linear.bias is None and f"{name}.bias" in tensors:
        raise UnsupportedModel(f"{where}: layer {name!r} has no bias, yet the file gives one")
    return WeightOnlyLinear(values, scale, zero=zero, bias=bias, group_size=group)


# shared -------------------------------------------------------------------------------------------


def _group_size(dtype: str, group_size: int | None) -> int | None:
    if dtype not in DTYPES:
        raise ConfigurationError(f"weight-only quantization is int8 or int4, not {dtype!r}")
    if dtype == "int8":
        if group_size is not None:
            raise ConfigurationError(
                "int8 weight-only has one scale per output channel: group_size is for int4"
            )
        return None
    group = DEFAULT_GROUP_SIZE if group_size is None else group_size
    if type(group) is not int or group not in GROUP_SIZES:
        raise ConfigurationError(f"group_size must be one of {GROUP_SIZES}, not {group!r}")
    return group


def _fits(dtype: str, columns: int, rows: int, group: int | None) -> bool:
    """Whether the kernel takes a layer: past these, torch's kernels read out of bounds or
    refuse (the int8 one reads sixteen input columns at a time, the int4 one packs sixteen
    output rows together)."""
    if group is None:
        return columns % _BLOCK == 0
    return columns % group == 0 and rows % _BLOCK == 0


def _check_kernel(dtype: str) -> None:
    from modelyard.flavors._weight_only_linear import kernels

    if kernels()[dtype] is None:
        torch = require("torch", extra="torch")
        raise UnsupportedModel(
            f"torch {torch.__version__} has no CPU kernel for weight-only {dtype} "
            "(torch 2.6 or newer has)"
        )


def _nothing_to_quantize(module: Any, dtype: str, group: int | None, kept: int) -> str:
    what = type(module).__qualname__
    if kept:
        hint = "" if group is None else f"; try a smaller group_size ({GROUP_SIZES})"
        return (
            f"none of the {kept} Linear layers of {what} can be {dtype}: "
            f"{_NEEDS[dtype].format(group=group)}{hint}"
        )
    return f"{what} has no nn.Linear layers (inside it) to quantize weight-only"


def _kind(tensor: Any) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _replace(module: Any, name: str, layer: Any) -> None:
    owner, _, attribute = name.rpartition(".")
    setattr(module.get_submodule(owner), attribute, layer)


def _name(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 1000
        and all(part and part.replace("_", "a").isalnum() for part in value.split("."))
    )


def _no_init() -> AbstractContextManager[Any]:
    """transformers' switch that skips the random init of weights the tensors then replace."""
    for where in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            switch = getattr(importlib.import_module(where), "no_init_weights", None)
        except ImportError:  # a transformers without that module
            continue
        if switch is not None:
            return switch()  # type: ignore[no-any-return]
    return nullcontext()
