"""Flavors: save, load and call each framework's models, without pickle by default.

>>> from modelyard.flavors import load_model, save_model
>>> save_model(classifier, "out/", input_example=X[:5])   # flavor picked from the object
>>> load_model("out/").predict(X)

One module per framework registers a `Flavor` with `@flavor`; frameworks are imported only when a
model of theirs is saved or loaded. What loading may do (pickles, stored code, skops types, torch
classes) is the operator's `TrustPolicy` (see docs/flavors.md), never what a version's files say.
Three public modules hold what other packages share with one flavor: `torch_tools` (rebuild a
stored module, its weights, its arguments), `onnx_tools` (a session and its feeds) and
`transformers_tools` (a text model with its tokenizer and task, and its answers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.flavors._answers import answer_for
    from modelyard.flavors._catalog import flavor, flavor_for, flavors, get_flavor
    from modelyard.flavors._environment import (
        EnvironmentMismatch,
        capture_environment,
        check_environment,
    )
    from modelyard.flavors._examples import save_example
    from modelyard.flavors._merge import merge_folders
    from modelyard.flavors._models import (
        MODEL_FILE,
        LoadedModel,
        ModelInfo,
        adopt_pickle,
        load_model,
        read_info,
        save_model,
    )
    from modelyard.flavors._paths import inside
    from modelyard.flavors._pickles import allowed, check_trusted, is_pickle, load_pickle, scan
    from modelyard.flavors._probe import PROBED, needs_probe, probe, probe_stored
    from modelyard.flavors._protocol import Flavor, type_names
    from modelyard.flavors._pyfunc import ModelContext, PythonModel
    from modelyard.flavors._signatures import (
        Signature,
        TensorSpec,
        datatype_of,
        infer_signature,
        named_arrays,
        numpy_dtype,
    )

__all__ = [
    "EnvironmentMismatch",
    "Flavor",
    "LoadedModel",
    "MODEL_FILE",
    "ModelContext",
    "ModelInfo",
    "PROBED",
    "PythonModel",
    "Signature",
    "TensorSpec",
    "adopt_pickle",
    "allowed",
    "answer_for",
    "capture_environment",
    "check_environment",
    "check_trusted",
    "datatype_of",
    "flavor",
    "flavor_for",
    "flavors",
    "get_flavor",
    "infer_signature",
    "inside",
    "is_pickle",
    "load_model",
    "load_pickle",
    "merge_folders",
    "named_arrays",
    "needs_probe",
    "numpy_dtype",
    "probe",
    "probe_stored",
    "read_info",
    "save_example",
    "save_model",
    "scan",
    "type_names",
]

# Each name is imported from its module on first use: the package is imported by every layer that
# touches a model, and its modules pull in numpy, pydantic, the registry and the store. The flavors
# themselves register when `_catalog` is first asked for one (see `_catalog.FLAVOR_MODULES`).
_HOMES = {
    "_answers": ("answer_for",),
    "_catalog": ("flavor", "flavor_for", "flavors", "get_flavor"),
    "_environment": ("EnvironmentMismatch", "capture_environment", "check_environment"),
    "_examples": ("save_example",),
    "_merge": ("merge_folders",),
    "_models": (
        "MODEL_FILE", "LoadedModel", "ModelInfo", "adopt_pickle", "load_model", "read_info",
        "save_model",
    ),
    "_paths": ("inside",),
    "_pickles": ("allowed", "check_trusted", "is_pickle", "load_pickle", "scan"),
    "_probe": ("PROBED", "needs_probe", "probe", "probe_stored"),
    "_protocol": ("Flavor", "type_names"),
    "_pyfunc": ("ModelContext", "PythonModel"),
    "_signatures": (
        "Signature", "TensorSpec", "datatype_of", "infer_signature", "named_arrays", "numpy_dtype",
    ),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
