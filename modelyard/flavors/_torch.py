"""PyTorch: weights always in `model.safetensors`, plus how to rebuild the module around them.

The module is rebuilt from one of:

- the module's class, when it is importable (`"class": "package.module:Class"` and JSON `init`
  keyword arguments), built on the meta device at load (no memory, no random init) and given
  the stored tensors with `load_state_dict(strict=True, assign=True)`. This is the default when
  the class rebuilds the model: the same tensor shapes and, given an input example, the same
  output for it. Loading it imports the class's module, so the operator must trust that module
  (`trusted_modules`, `modelyard serve --trust-module`);
- `model.pt2`, a `torch.export` program traced on the input example, with a dynamic batch
  dimension: with `export=True`, or by default when the class cannot rebuild the model (defined
  in `__main__`, or its constructor needs arguments `init` does not give). It loads without
  trusting any module, but tracing costs seconds (most of a `log_model`). Its own copy of the
  weights is replaced by zero-stride stubs before saving, so the weights are stored once, in
  the safetensors file (where the store cuts them per tensor);
- for a dynamically int8-quantized module, its class again, quantized at load and given the
  stored int8 weights (see `_torch_quantized`);
- with `serialization="pickle"`, a whole-module `torch.save` file, loaded only with `trust=True`
  and after a scan.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UnsupportedModel, UntrustedModel
from modelyard.flavors import _weight_only as weight_only
from modelyard.flavors import torch_tools
from modelyard.flavors._answers import check_answer, outputs_of, shaped
from modelyard.flavors._catalog import flavor
from modelyard.flavors._paths import inside
from modelyard.flavors._pickles import check_trusted, guarded_pickle_module
from modelyard.flavors._protocol import Flavor, type_names
from modelyard.flavors._torch_folding import fold_dequantized_weights
from modelyard.flavors._torch_programs import check_program
from modelyard.flavors._torch_quantized import quantized_modules, quantized_state, rebuild
from modelyard.security import TrustPolicy

WEIGHTS_FILE = torch_tools.WEIGHTS_FILE
PROGRAM_FILE = "model.pt2"
PICKLE_FILE = "model.pt"
MODEL_FILE = "modelyard.json"

_MODULE = "torch.nn.modules.module.Module"
# A transformers model is a Module too; the transformers flavor saves it with its tokenizer.
_PRETRAINED = "transformers.modeling_utils.PreTrainedModel"
_EXPORT_HINT = (
    "; or log the module as a torch.export program, which loads without trusting any module: "
    "yard.log_model(module, name=..., input_example=x, options={'export': True})"
)


@flavor
class TorchFlavor(Flavor):
    """`torch.nn.Module`s, stored as safetensors weights plus an exported program or a class.

    Options of `save`: `export=True` traces a `torch.export` program (it needs an input example;
    serving it needs no trusted module); `export=False` never traces; the default traces only
    when the class does not rebuild the model. `init={...}` gives the JSON keyword arguments that
    rebuild the class; `serialization="pickle"` saves the whole module with `torch.save` instead
    (loading it then needs `trust=True`).
    """

    name = "torch"
    extra = "torch"
    packages = ("torch", "safetensors")

    def matches(self, model: object) -> bool:
        names = type_names(model)
        return _MODULE in names and _PRETRAINED not in names

    def save(
        self,
        model: Any,
        path: Path,
        *,
        example: Any = None,
        export: bool | None = None,
        init: Mapping[str, Any] | None = None,
        serialization: str = "safetensors",
        answer: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        settings = self._save(model, path, example, export, init, serialization)
        if answer is not None:  # an optimization step's child answers as its parent (_answers)
            settings["answer"] = check_answer(answer)
        return settings

    def _save(
        self,
        model: Any,
        path: Path,
        example: Any,
        export: bool | None,
        init: Mapping[str, Any] | None,
        serialization: str,
    ) -> dict[str, Any]:
        if serialization not in ("safetensors", "pickle"):
            raise ConfigurationError(
                f"unknown torch serialization {serialization!r}; use 'safetensors' or 'pickle'"
            )
        if serialization == "pickle":
            require("torch", extra="torch").save(model, path / PICKLE_FILE)
            rebuild: dict[str, Any] = {"format": "pickle", "file": PICKLE_FILE}
        elif quantized_modules(model):
            # Packed int8 weights cannot be exported or put in safetensors as they are: the
            # class is rebuilt, quantized again and given the stored int8 values.
            return _save_quantized(model, path, init)
        elif weight_only.weight_only_layers(model):  # int8/int4 Linear layers (_weight_only)
            location, arguments = _importable(model), _json_init(init)
            stored = weight_only.save_weights(model, path / WEIGHTS_FILE)
            return {"format": "class", "class": location, "init": arguments,
                    "weight_only": stored, "weights": WEIGHTS_FILE, "tied": {}}  # fmt: skip
        elif _exports(model, example, export, init):
            _save_program(model, example, path / PROGRAM_FILE, weights=_stored_names(model))
            rebuild = {
                "format": "export",
                "program": PROGRAM_FILE,
                **_class_if_rebuilt(model, init),
            }
        else:
            rebuild = {"format": "class", "class": _importable(model), "init": _json_init(init)}
            _check_rebuild(model, rebuild["class"], rebuild["init"])
        # Weights last, so that a model refused above leaves no file behind.
        tied = _save_weights(model, path / WEIGHTS_FILE)
        return {**rebuild, "weights": WEIGHTS_FILE, "tied": tied}

    def load(self, path: Path, settings: Mapping[str, Any], *, trust: TrustPolicy) -> Any:
        torch = require("torch", extra="torch")
        if "answer" in settings:  # from the files: checked before any request relies on it
            check_answer(settings["answer"])
        kind = settings.get("format")
        if kind == "pickle":
            file = inside(path, settings["file"])
            policy = check_trusted(file, trust=trust, kind="torch.save (pickle)")
            module = torch.load(
                file, weights_only=False, pickle_module=guarded_pickle_module(file, policy)
            )
            return module.eval()
        if kind == "class":
            # Refused before anything is read: the class named must be one the operator allows.
            _check_class(path, settings.get("class"), trust)
        weights_file = inside(path, settings["weights"], setting="weights")
        if kind == "export":
            program = inside(path, settings["program"], setting="program")
            check_program(program, trust)
            # An exported program was traced in eval mode and cannot switch modes any more.
            return _load_program(
                program, torch_tools.load_weights(weights_file, settings.get("tied", {}))
            )
        if kind == "class" and "weight_only" in settings:  # checked there, tensor by tensor
            init = settings.get("init", {})
            return weight_only.load_weights(
                weights_file, settings["weight_only"], where=path,
                build=lambda: torch_tools.instantiate(settings["class"], init),
            )  # fmt: skip
        weights = torch_tools.load_weights(weights_file, settings.get("tied", {}))
        if kind == "class" and "quantized" in settings:
            module = torch_tools.instantiate(settings["class"], settings.get("init", {}))
            return rebuild(module, settings["quantized"], weights)
        if kind == "class":
            return _filled(settings["class"], settings.get("init", {}), weights)
        raise UnsupportedModel(f"{path}: unknown torch format {kind!r}")

    def pickle_settings(self, file: str) -> dict[str, Any]:
        # A whole module saved with torch.save elsewhere, logged as it is.
        return {"format": "pickle", "file": file}

    def predict(self, model: Any, inputs: Any, settings: Mapping[str, Any]) -> Any:
        torch = require("torch", extra="torch")
        args, kwargs = torch_tools.arguments(inputs, torch_tools.float_dtype(model))
        with torch.inference_mode():
            answer = _to_numpy(model(*args, **kwargs))
        if "answer" in settings:
            return shaped(outputs_of(answer), settings["answer"])
        return answer

    def describe(self, model: Any) -> dict[str, Any]:
        return {
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "parameters": sum(parameter.numel() for parameter in model.parameters()),
            "tensors": len(model.state_dict()),
        }


# weights ------------------------------------------------------------------------------------------


def _save_weights(model: Any, file: Path) -> dict[str, str]:
    """Write the state dict; return the tied names (name -> the name stored in its place)."""
    tensors, tied = torch_tools.untied(model.state_dict())
    torch_tools.save_weights(tensors, file)  # pruned tensors sparse (see _torch_sparse)
    return tied


def _save_quantized(model: Any, path: Path, init: Mapping[str, Any] | None) -> dict[str, Any]:
    location, arguments = _importable(model), _json_init(init)
    torch = require("torch", extra="torch")
    try:
        with torch.device("meta"):
            torch_tools.instantiate(location, arguments)
    except Exception as error:  # any constructor error: the class cannot be rebuilt this way
        raise ConfigurationError(
            f"cannot rebuild {location} with init={arguments}: {error}; pass the right init="
        ) from None
    tensors, settings = quantized_state(model)
    tensors, tied = torch_tools.untied(tensors)
    torch_tools.save_weights(tensors, path / WEIGHTS_FILE)
    return {"format": "class", "class": location, "init": arguments, "quantized": settings,
            "weights": WEIGHTS_FILE, "tied": tied}  # fmt: skip


def _stored_names(model: Any) -> set[str]:
    return set(model.state_dict())


# exported programs --------------------------------------------------------------------------------


def _save_program(model: Any, example: Any, file: Path, *, weights: set[str]) -> None:
    torch = require("torch", extra="torch")
    args, kwargs = torch_tools.arguments(example, torch_tools.float_dtype(model))
    args = tuple(torch_tools.batch_of_two(value) for value in args)
    kwargs = {key: torch_tools.batch_of_two(value) for key, value in kwargs.items()}
    dynamic = torch_tools.dynamic_batch(model, args, kwargs)
    with _eval_mode(model):
        try:
            program = torch.export.export(model, args, kwargs, dynamic_shapes=dynamic)
        except Exception as error:  # export fails in many ways, each with its own type
            raise ConfigurationError(
                f"torch.export could not trace {type(model).__qualname__} with a dynamic batch "
                f"dimension ({type(error).__name__}: {str(error).strip()[:500]}); pass "
                "export=False to rebuild the module from its class instead"
            ) from error
    for name, tensor in list(program.state_dict.items()):
        if name in weights:
            stub = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)
            program.state_dict[name] = _like(tensor, stub)
    with warnings.catch_warnings():
        # torch warns that a stub's one-element storage is not "complete"; that is the point.
        warnings.filterwarnings("ignore", "No complete tensor found", UserWarning)
        torch.export.save(program, str(file))


def _load_program(file: Path, weights: Mapping[str, Any]) -> Any:
    torch = require("torch", extra="torch")
    program = torch.export.load(str(file))
    for name, stub in list(program.state_dict.items()):
        if name in weights:
            program.state_dict[name] = _like(stub, weights[name])
        elif stub.dim() and not any(stub.stride()):  # a stub whose tensor went missing
            raise UnsupportedModel(f"{file}: tensor {name!r} is missing from {WEIGHTS_FILE}")
    return fold_dequantized_weights(program.module())  # int8 (PT2E) weights: once, not per call


def _like(original: Any, tensor: Any) -> Any:
    """`tensor`, wrapped as a frozen Parameter when `original` was a Parameter."""
    torch = require("torch", extra="torch")
    if isinstance(original, torch.nn.Parameter):
        return torch.nn.Parameter(tensor, requires_grad=False)
    return tensor


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Put a module in eval mode for a while, restoring each submodule's own mode after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


# classes ------------------------------------------------------------------------------------------


def _exports(model: Any, example: Any, export: bool | None, init: Any) -> bool:
    """Whether to trace a program: when asked, or (by default) when the class does not rebuild
    the model. Tracing takes seconds; a class takes a meta-device build and one forward pass."""
    if export is None:
        return example is not None and not _rebuilds(model, example, init)
    if export and example is None:
        raise ConfigurationError("export=True needs an input example to trace the module with")
    return export


def _rebuilds(model: Any, example: Any, init: Mapping[str, Any] | None) -> bool:
    """Whether the class, built with `init` and given the model's tensors, answers the example
    as the model does: equal shapes alone would miss a constructor argument that changes the
    computation (an activation, a flag) and is left at its default."""
    torch = require("torch", extra="torch")
    location = _class_location(model)
    if location is None:
        return False
    arguments = _json_init(init)
    try:
        _check_rebuild(model, location, arguments)
        probe = _filled(location, arguments, model.state_dict())
        args, kwargs = torch_tools.arguments(example, torch_tools.float_dtype(model))
        with _eval_mode(model), torch.inference_mode():
            return _same(_to_numpy(model(*args, **kwargs)), _to_numpy(probe(*args, **kwargs)))
    except Exception:  # any failure to rebuild or run the probe: trace a program instead
        return False


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, np.ndarray) and isinstance(right, np.ndarray):
        return left.shape == right.shape and bool(np.array_equal(left, right, equal_nan=True))
    if isinstance(left, tuple) and isinstance(right, tuple) and len(left) == len(right):
        return all(_same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, Mapping) and isinstance(right, Mapping) and left.keys() == right.keys():
        return all(_same(left[key], right[key]) for key in left)
    return type(left) is type(right) and bool(left == right)


def _filled(location: str, init: Mapping[str, Any], weights: Mapping[str, Any]) -> Any:
    """The class built on the meta device (allocating and initializing nothing) and given
    `weights`; built for real when something stays unset (a buffer kept out of the state dict)
    or the constructor cannot run on the meta device."""
    torch = require("torch", extra="torch")
    try:
        with torch.device("meta"):
            module = torch_tools.instantiate(location, init)
        # assign: keep the stored dtypes (a bfloat16 model stays one) and skip a copy.
        module.load_state_dict(weights, strict=True, assign=True)
        if not any(tensor.is_meta for tensor in [*module.parameters(), *module.buffers()]):
            return module.eval()
    except (NotImplementedError, RuntimeError):  # a constructor that computes on its tensors
        pass
    module = torch_tools.instantiate(location, init)
    module.load_state_dict(weights, strict=True, assign=True)
    return module.eval()


def _importable(model: Any) -> str:
    location = _class_location(model)
    if location is None:
        raise ConfigurationError(
            f"cannot save {type(model).__qualname__}: its class is not importable (defined "
            "in __main__ or inside a function), so it could not be rebuilt at load; pass an "
            "input example (to save a torch.export program) or define the class in a module"
        )
    return location


def _class_location(model: Any) -> str | None:
    """`module:qualname` of the model's class, if importing that gives back the same class."""
    cls = type(model)
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return None
    try:
        found = torch_tools.resolve(cls.__module__, cls.__qualname__)
    except (ImportError, AttributeError):
        return None
    return f"{cls.__module__}:{cls.__qualname__}" if found is cls else None


def _check_class(path: Path, location: Any, trust: TrustPolicy) -> None:
    """Refuse, before importing anything, a `class` setting the operator has not allowed:
    importing a module runs its code. torch's own `torch.nn` modules are always allowed."""
    if not isinstance(location, str) or location.count(":") != 1:
        raise UnsupportedModel(f"{path}: the torch 'class' setting must be 'module:Class'")
    module, _, qualname = location.partition(":")
    names = [*module.split("."), *qualname.split(".")]
    if not all(name.isidentifier() and not name.startswith("__") for name in names):
        raise UnsupportedModel(f"{path}: {location!r} is not a 'module:Class' name")
    if trust.pickles or trust.allows_module(module) or torch_tools.under_torch_nn(module):
        try:
            importlib.import_module(module)  # allowed: `instantiate` then finds it imported
        except ImportError as error:
            raise UnsupportedModel(
                f"cannot rebuild the torch module: {location} is not importable here ({error}); "
                "install the package that defines it"
            ) from None
        return
    raise UntrustedModel(
        f"{path / MODEL_FILE}", kind="torch 'class' setting", types=[location],
        setting="trusted_modules", hint=_EXPORT_HINT,
    )  # fmt: skip


def _check_rebuild(model: Any, location: str, init: Mapping[str, Any]) -> None:
    """Refuse now a class that `init` does not rebuild with the same tensors, rather than fail
    at load; the probe is built on the meta device, so it allocates no memory."""
    torch = require("torch", extra="torch")
    try:
        with torch.device("meta"):
            probe = torch_tools.instantiate(location, init)
    except Exception as error:  # any constructor error: the class cannot be rebuilt this way
        raise ConfigurationError(
            f"cannot rebuild {location} with init={dict(init)}: {error}; pass the right init= "
            "or an input example (to save a torch.export program)"
        ) from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    rebuilt = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    if expected != rebuilt:
        differ = sorted(expected.keys() ^ rebuilt.keys()) or sorted(
            k for k in expected if expected[k] != rebuilt[k]
        )
        raise ConfigurationError(
            f"{location}(**{dict(init)}) does not rebuild this model: tensor {differ[0]!r} "
            "differs; pass the right init= or an input example (to save a torch.export program)"
        )


def _class_if_rebuilt(model: Any, init: Mapping[str, Any] | None) -> dict[str, Any]:
    """The class beside an exported program, when `init` rebuilds it: optimization steps that
    swap layers (int8, float16) need the module itself, which a program no longer has."""
    location = _class_location(model)
    if location is None:
        return {}
    try:
        arguments = _json_init(init)
        _check_rebuild(model, location, arguments)
    except ConfigurationError:
        return {}
    return {"class": location, "init": arguments}


def _json_init(init: Mapping[str, Any] | None) -> dict[str, Any]:
    init = dict(init or {})
    try:
        json.dumps(init)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"init must be JSON keyword arguments: {error}") from None
    return init


# inputs and outputs -------------------------------------------------------------------------------


def _to_numpy(output: Any) -> Any:
    torch = require("torch", extra="torch")
    if isinstance(output, torch.Tensor):
        output = output.detach().cpu()
        if output.dtype == torch.bfloat16:  # NumPy has no bfloat16
            output = output.float()
        return output.numpy()
    if isinstance(output, tuple | list):
        return tuple(_to_numpy(item) for item in output)
    if isinstance(output, Mapping):
        return {key: _to_numpy(item) for key, item in output.items()}
    return output
