"""Quantization-aware training (QAT) for torch's dynamic int8.

Post-training int8 rounds weights a model never saw rounded. QAT lets the caller's `finetune`
callback train a copy of the module that already computes as the int8 one will: each Linear
layer is swapped for torch's dynamic-QAT Linear (`torch.ao.nn.qat.dynamic.Linear`), whose
weights go through a fake quantizer, and its input through another, both set to round exactly
as `quantize_dynamic` and its kernels do:

- weights: qint8, per tensor, symmetric, the scale taken from the current weights (torch's
  `default_weight_fake_quant` averages the range over steps; `quantize_dynamic` does not);
- inputs: quint8, per tensor, affine, the range taken from each batch, as the kernels do at run
  time; the x86/fbgemm/onednn kernels use 7 bits (0..127, "reduce_range"), qnnpack all 8
  (torch's `default_dynamic_qat_qconfig` uses 8 bits, which the x86 kernel does not).

Gradients pass the rounding straight through. After training the Linear layers are swapped back
(the same weight tensors) and the module goes through the ordinary `quantize_int8`: the result
is stored and reloaded as any dynamic int8 version is. LSTM and GRU have no QAT module in
torch and are refused rather than trained as float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors.torch_tools import QUANTIZABLE_TYPES

# Gets the module with fake quantization (in training mode), trains it in place, and may return
# it (or a replacement of the same structure), as prune's `finetune` does.
FineTune = Callable[[Any], Any]


def check_request(dtype: str, method: str, finetune: Any) -> None:
    """Refuse `finetune=` where quantize cannot train (before anything is loaded)."""
    if finetune is None:
        return
    if not callable(finetune):
        raise ConfigurationError(
            f"finetune must be a function that trains the module it gets, not "
            f"{type(finetune).__name__}"
        )
    if dtype != "int8" or method != "dynamic":
        raise ConfigurationError(
            "finetune= (quantization-aware training) makes dynamic int8 only; it does not "
            f"apply to dtype={dtype!r} with method={method!r}"
        )


def quantize_trained(
    module: Any, finetune: FineTune, types: Sequence[str] = QUANTIZABLE_TYPES
) -> tuple[Any, dict[str, Any]]:
    """A dynamically quantized int8 copy of `module` (not changed), trained by `finetune`
    with int8 rounding simulated first; and the settings that describe it."""
    from modelyard.optimize._torch_steps import quantize_int8

    torch = require("torch", extra="torch")
    _refuse_recurrent(module, types)
    if "Linear" not in types:
        raise ConfigurationError(
            "quantization-aware training simulates int8 Linear layers: modules= must include "
            "'Linear'"
        )
    training, swapped = _with_fake_quantization(_copy(module))
    if not swapped:
        raise UnsupportedModel(
            f"{type(module).__qualname__} has no Linear submodules to train for int8"
        )
    returned = finetune(training.train())
    trained = training if returned is None else returned
    if not isinstance(trained, torch.nn.Module):
        raise ConfigurationError(
            f"the fine-tune callback returned a {type(trained).__name__}, not the module"
        )
    # A callback may train on an accelerator; the int8 kernels are the CPU's.
    trained = _without_fake_quantization(trained).cpu().eval()
    _check_same(module, trained)
    settings = {
        "method": "dynamic", "modules": ",".join(types), "qat": True,
        "finetune": getattr(finetune, "__name__", "callback"),
    }  # fmt: skip
    return quantize_int8(trained, types), settings


def _refuse_recurrent(module: Any, types: Sequence[str]) -> None:
    torch = require("torch", extra="torch")
    kinds = tuple(getattr(torch.nn, kind) for kind in types if kind in ("LSTM", "GRU"))
    for name, sub in module.named_modules():
        if type(sub) in kinds:
            kind = type(sub).__name__
            raise UnsupportedModel(
                f"quantization-aware training simulates int8 Linear layers only, and "
                f"{name or 'the model'!r} is an {kind}: pass modules=('Linear',) to train and "
                f"quantize the Linear layers (the {kind} stays float), or quantize without "
                "finetune="
            )


def _copy(module: Any) -> Any:
    import copy

    return copy.deepcopy(module)


def _qconfig() -> Any:
    """What `quantize_dynamic` and its kernels do to a Linear layer, as fake quantizers."""
    torch = require("torch", extra="torch")
    quantization = torch.ao.quantization
    # Each scale from the tensor at hand (averaging constant 1): the weights as they are
    # when converted, the inputs of each batch, as at run time.
    weight = quantization.FakeQuantize.with_args(
        observer=quantization.MovingAverageMinMaxObserver, averaging_constant=1,
        quant_min=-128, quant_max=127, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
    )  # fmt: skip
    top = 255 if torch.backends.quantized.engine == "qnnpack" else 127  # see the docstring
    activation = quantization.FakeQuantize.with_args(
        observer=quantization.MovingAverageMinMaxObserver, averaging_constant=1,
        quant_min=0, quant_max=top, dtype=torch.quint8, qscheme=torch.per_tensor_affine,
        is_dynamic=True,
    )  # fmt: skip
    return quantization.QConfig(activation=activation, weight=weight)


def _fake_quantize_input(layer: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (layer.input_fake_quant(args[0]), *args[1:])


def _with_fake_quantization(module: Any) -> tuple[Any, int]:
    """`module` with each `nn.Linear` (exactly that type: what `quantize_dynamic` swaps) a
    dynamic-QAT Linear sharing its weights, and how many were swapped."""
    torch = require("torch", extra="torch")
    qconfig = _qconfig()

    def swap(linear: Any) -> Any:
        linear.qconfig = qconfig
        layer = torch.ao.nn.qat.dynamic.Linear.from_float(linear)
        del linear.qconfig  # a float layer's own qconfig would steer `quantize_dynamic`
        layer.input_fake_quant = qconfig.activation()
        layer.register_forward_pre_hook(_fake_quantize_input)
        return layer.to(linear.weight.device).train(linear.training)

    return _swap(module, lambda sub: type(sub) is torch.nn.Linear, swap)


def _without_fake_quantization(module: Any) -> Any:
    """`module` with each dynamic-QAT Linear a plain `nn.Linear` again, its weights the
    trained ones."""
    torch = require("torch", extra="torch")

    def swap(layer: Any) -> Any:
        # Built on the meta device: its own weights would be replaced anyway.
        linear = torch.nn.Linear(layer.in_features, layer.out_features,
                                 bias=layer.bias is not None, device="meta")  # fmt: skip
        linear.weight = layer.weight
        linear.bias = layer.bias
        return linear.train(layer.training)

    training_linear = torch.ao.nn.qat.dynamic.Linear
    return _swap(module, lambda sub: isinstance(sub, training_linear), swap)[0]


def _swap(
    module: Any, wanted: Callable[[Any], bool], swap: Callable[[Any], Any]
) -> tuple[Any, int]:
    """Replace each submodule that is `wanted` (a layer shared by two owners stays shared);
    not `module` itself, which `quantize_dynamic` does not convert either."""
    done: dict[int, Any] = {}
    for owner in list(module.modules()):
        for key, sub in list(owner._modules.items()):
            if sub is not None and wanted(sub):
                if id(sub) not in done:
                    done[id(sub)] = swap(sub)
                owner._modules[key] = done[id(sub)]
    return module, len(done)


def _check_same(module: Any, trained: Any) -> None:
    """The trained module must still be the parent's structure: its class rebuilds it."""
    before, after = module.state_dict(), trained.state_dict()
    if type(trained) is not type(module) or before.keys() != after.keys():
        changed = sorted(set(before) ^ set(after))
        raise ConfigurationError(
            "the fine-tune callback changed the module: "
            + (f"{changed[0]!r} is new or gone" if changed else "its type is not the parent's")
        )
    for key, value in before.items():
        if getattr(value, "shape", None) != getattr(after[key], "shape", None):
            raise ConfigurationError(f"the fine-tune callback changed the module: {key!r} reshaped")
