"""PyTorch steps: dynamic int8 quantization, float16, magnitude pruning, layer removal.

Each takes the parent's module and returns a new one; the parent is never changed.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from modelyard._imports import require
from modelyard.errors import ConfigurationError, InvalidInput, UnsupportedModel
from modelyard.flavors import torch_tools
from modelyard.flavors.torch_tools import QUANTIZABLE_TYPES, quantize, quantized_modules

# A fine-tune callback: gets the pruned module (in training mode), trains it in place, and may
# return it (or a replacement of the same structure).
FineTune = Callable[[Any], Any]


def quantize_int8(module: Any, types: Sequence[str] = QUANTIZABLE_TYPES) -> Any:
    """`module` with its Linear (and LSTM/GRU) layers dynamically quantized to int8."""
    torch = require("torch", extra="torch")
    wanted = tuple(getattr(torch.nn, name) for name in types if hasattr(torch.nn, name))
    if not any(isinstance(sub, wanted) for sub in module.modules()):
        raise UnsupportedModel(
            f"{type(module).__qualname__} has no {'/'.join(types)} modules to quantize; a version "
            "saved as a torch.export program has none left (its layers are graph operations): "
            "log the module with options={'export': False} so its class is rebuilt"
        )
    quantized = quantize(_copy(module).eval(), list(types))
    return quantized


def to_float16(module: Any) -> Any:
    """A float16 copy of `module` (integer buffers stay as they are)."""
    if quantized_modules(module):
        raise UnsupportedModel("an int8-quantized module cannot also be made float16")
    return _copy(module).half().eval()


def prune_magnitude(
    module: Any,
    sparsity: float,
    *,
    structured: bool = False,
    finetune: FineTune | None = None,
) -> tuple[Any, float]:
    """A copy of `module` with the smallest weights of each Linear/Conv layer set to zero.

    Unstructured: the `sparsity` fraction of each layer's weights with the smallest magnitude.
    Structured: the `sparsity` fraction of each layer's output channels (rows) with the
    smallest L2 norm, with their biases; the last layer (the outputs) is left whole.
    `finetune(module)` then trains the pruned module (the pruned weights get zero gradients,
    and are zeroed again after). Returns the module and the fraction of prunable weights that
    are zero.
    """
    torch = require("torch", extra="torch")
    if not 0 < sparsity < 1:
        raise ConfigurationError(f"sparsity must be between 0 and 1 (exclusive), not {sparsity}")
    pruned = _copy(module)
    masks: dict[str, Any] = {}
    named = dict(pruned.named_parameters())
    matrices = [
        name for name, weight in named.items()
        if name.endswith("weight") and weight.dim() >= 2 and weight.is_floating_point()
    ]  # fmt: skip
    if structured:  # the last layer's rows are the model's outputs (classes): all are kept
        matrices = matrices[:-1]
    for name in matrices:
        weight = named[name]
        with torch.no_grad():
            mask = _rows_mask(weight, sparsity) if structured else _magnitude_mask(weight, sparsity)
            # masked_fill, not mul: a negative weight times 0 is -0.0, which is not stored as
            # a zero (the sparse weights file keeps every bit), so pruned weights are +0.0.
            weight.masked_fill_(mask == 0, 0.0)
            masks[name] = mask
            bias = named.get(name[: -len("weight")] + "bias")
            if structured and bias is not None:
                row = mask.reshape(mask.shape[0], -1)[:, 0]
                bias.masked_fill_(row == 0, 0.0)
                masks[name[: -len("weight")] + "bias"] = row
    if not masks:
        raise UnsupportedModel(f"{type(module).__qualname__} has no weight matrices to prune")
    if finetune is not None:
        pruned = _finetune(pruned, masks, finetune)
    zeros = sum(int((named_weight == 0).sum()) for named_weight in _weights(pruned, masks))
    total = sum(weight.numel() for weight in _weights(pruned, masks))
    return pruned.eval(), zeros / total


def _copy(module: Any) -> Any:
    with warnings.catch_warnings():
        # Copying an exported program's module walks torch's own deprecated pytree specs.
        warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*", FutureWarning)
        return copy.deepcopy(module)


# Modules that act on each channel alone: a channel that is zero before them is a constant after.
ELEMENTWISE = (
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Mish", "Tanh", "Sigmoid", "Hardswish",
    "Hardtanh", "Dropout", "Identity", "BatchNorm1d",
)  # fmt: skip


def shrink(module: Any) -> tuple[Any, int]:
    """Remove the output channels that structured pruning zeroed, where the next layer of the
    same `nn.Sequential` is a Linear reached through element-wise modules: the constant each
    removed channel still fed it is folded into its bias, so the answers do not change, and
    the weights and the time shrink. Returns the module and the channels removed."""
    torch = require("torch", extra="torch")
    removed = 0
    for stack in [m for m in module.modules() if isinstance(m, torch.nn.Sequential)]:
        keys = list(stack._modules)
        for i, key in enumerate(keys):
            layer = stack._modules[key]
            j = i + 1
            while j < len(keys) and type(stack._modules[keys[j]]).__name__ in ELEMENTWISE:
                j += 1
            if type(layer) is not torch.nn.Linear or j == len(keys):
                continue
            consumer = stack._modules[keys[j]]
            if type(consumer) is not torch.nn.Linear:
                continue
            dead = (layer.weight == 0).all(dim=1)
            if layer.bias is not None:
                dead &= layer.bias == 0
            if not dead.any() or dead.all():
                continue
            between = [stack._modules[k] for k in keys[i + 1 : j]]
            _cut(stack, key, keys[j], layer, consumer, between, dead)
            for k, part in zip(keys[i + 1 : j], between, strict=True):
                if type(part).__name__ == "BatchNorm1d":
                    stack._modules[k] = _narrow_norm(part, ~dead)
            removed += int(dead.sum())
    return module, removed


def _cut(
    stack: Any, key: str, next_key: str, layer: Any, consumer: Any, between: list[Any], dead: Any
) -> None:
    torch = require("torch", extra="torch")
    keep = ~dead
    with torch.no_grad():
        value = torch.zeros(1, layer.out_features, dtype=layer.weight.dtype)
        for part in between:
            value = part.eval()(value)
        fold = consumer.weight[:, dead] @ value[0, dead]
        narrow = torch.nn.Linear(layer.in_features, int(keep.sum()), bias=layer.bias is not None)
        narrow.weight.copy_(layer.weight[keep])
        if layer.bias is not None:
            narrow.bias.copy_(layer.bias[keep])
        follower = torch.nn.Linear(int(keep.sum()), consumer.out_features)
        follower.weight.copy_(consumer.weight[:, keep])
        follower.bias.copy_(fold if consumer.bias is None else consumer.bias + fold)
    stack._modules[key] = narrow.to(layer.weight.dtype)
    stack._modules[next_key] = follower.to(layer.weight.dtype)


def _narrow_norm(norm: Any, keep: Any) -> Any:
    torch = require("torch", extra="torch")
    narrow = torch.nn.BatchNorm1d(
        int(keep.sum()), eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
        track_running_stats=norm.track_running_stats,
    )  # fmt: skip
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(norm, name, None) is not None:
                getattr(narrow, name).copy_(getattr(norm, name)[keep])
    return narrow.eval()


def _magnitude_mask(weight: Any, sparsity: float) -> Any:
    torch = require("torch", extra="torch")
    count = int(round(sparsity * weight.numel()))
    mask = torch.ones_like(weight)
    if count:
        smallest = torch.topk(weight.abs().flatten(), count, largest=False).indices
        mask.view(-1)[smallest] = 0
    return mask


def _rows_mask(weight: Any, sparsity: float) -> Any:
    torch = require("torch", extra="torch")
    norms = weight.reshape(weight.shape[0], -1).norm(dim=1)
    count = int(round(sparsity * len(norms)))
    keep = torch.ones_like(norms)
    if count:
        keep[torch.topk(norms, count, largest=False).indices] = 0
    return keep.reshape(-1, *([1] * (weight.dim() - 1))).expand_as(weight).clone()


def _finetune(module: Any, masks: dict[str, Any], finetune: FineTune) -> Any:
    torch = require("torch", extra="torch")
    named = dict(module.named_parameters())
    hooks = []
    for name, mask in masks.items():
        named[name].requires_grad_(True)
        hooks.append(named[name].register_hook(lambda grad, mask=mask: grad * mask))
    module.train()
    try:
        result = finetune(module)
    finally:
        for hook in hooks:
            hook.remove()
    module = module if result is None else result
    named = dict(module.named_parameters())
    with torch.no_grad():  # weight decay or a replaced tensor could have revived a pruned one
        for name, mask in masks.items():
            if name not in named or named[name].shape != mask.shape:
                raise ConfigurationError(
                    f"the fine-tune callback changed the module: {name!r} is gone or reshaped"
                )
            named[name].masked_fill_(mask == 0, 0.0)
            named[name].requires_grad_(False)
    return module


def _weights(module: Any, masks: dict[str, Any]) -> list[Any]:
    named = dict(module.named_parameters())
    return [named[name] for name in masks if name.endswith("weight")]


def remove_layers(module: Any, layers: Sequence[str], example: Any) -> Any:
    """A copy of `module` without the named children of its `nn.Sequential` stacks (e.g.
    `layers.2`, `layers.3`), checked to still run on `example`."""
    torch = require("torch", extra="torch")
    if not layers:
        raise ConfigurationError("name the layers to remove, e.g. layers=['layers.2']")
    pruned = _copy(module)
    by_parent: dict[str, set[str]] = {}
    for layer in layers:
        parent, _, child = layer.rpartition(".")
        try:
            stack = pruned.get_submodule(parent)
        except AttributeError:
            raise InvalidInput(f"{type(module).__qualname__} has no module {parent!r}") from None
        if not isinstance(stack, torch.nn.Sequential):
            raise UnsupportedModel(
                f"{layer!r} is not in an nn.Sequential stack ({parent or 'the model'} is a "
                f"{type(stack).__qualname__}); only whole layers of a Sequential can be removed"
            )
        if child not in stack._modules:
            raise InvalidInput(f"{parent or 'the model'} has no layer {child!r}")
        by_parent.setdefault(parent, set()).add(child)
    for parent, children in by_parent.items():
        stack = pruned.get_submodule(parent)
        kept = [layer for key, layer in stack._modules.items() if key not in children]
        if not kept:
            raise InvalidInput(f"removing {sorted(children)} would leave {parent!r} empty")
        replacement = torch.nn.Sequential(*kept)
        if parent:
            owner, _, attribute = parent.rpartition(".")
            setattr(pruned.get_submodule(owner), attribute, replacement)
        else:
            pruned = replacement
    _check_runs(pruned.eval(), example, layers)
    return pruned


def _check_runs(module: Any, example: Any, layers: Sequence[str]) -> None:
    torch = require("torch", extra="torch")

    args, kwargs = torch_tools.arguments(example, torch_tools.float_dtype(module))
    try:
        with torch.inference_mode():
            module(*args, **kwargs)
    except RuntimeError as error:
        raise InvalidInput(
            f"without {', '.join(layers)} the model no longer runs on its example: "
            f"{str(error).splitlines()[0]}"
        ) from None
