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
from modelyard.flavors._torch_quantized import TYPES, quantize, quantized_modules

# A fine-tune callback: gets the pruned module (in training mode), trains it in place, and may
# return it (or a replacement of the same structure).
FineTune = Callable[[Any], Any]


def quantize_int8(module: Any, types: Sequence[str] = TYPES) -> Any:
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
    smallest L2 norm, with their biases. `finetune(module)` then trains the pruned module (the
    pruned weights get zero gradients, and are zeroed again after). Returns the module and the
    fraction of prunable weights that are zero.
    """
    torch = require("torch", extra="torch")
    if not 0 < sparsity < 1:
        raise ConfigurationError(f"sparsity must be between 0 and 1 (exclusive), not {sparsity}")
    pruned = _copy(module)
    masks: dict[str, Any] = {}
    named = dict(pruned.named_parameters())
    for name, weight in named.items():
        if not name.endswith("weight") or weight.dim() < 2 or not weight.is_floating_point():
            continue  # norms, embeddings' 1-D scales and biases are kept
        with torch.no_grad():
            mask = _rows_mask(weight, sparsity) if structured else _magnitude_mask(weight, sparsity)
            weight.mul_(mask)
            masks[name] = mask
            bias = named.get(name[: -len("weight")] + "bias")
            if structured and bias is not None:
                row = mask.reshape(mask.shape[0], -1)[:, 0]
                bias.mul_(row)
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
            named[name].mul_(mask)
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
    from modelyard.flavors._torch import _arguments, _float_dtype

    args, kwargs = _arguments(example, _float_dtype(module))
    try:
        with torch.inference_mode():
            module(*args, **kwargs)
    except RuntimeError as error:
        raise InvalidInput(
            f"without {', '.join(layers)} the model no longer runs on its example: "
            f"{str(error).splitlines()[0]}"
        ) from None
