"""An MLflow model folder (an `MLmodel` file beside the model's files) as a modelyard folder.

The `MLmodel` file is untrusted like every byte of a model: it is read with a safe YAML loader,
every path it names must stay inside the folder, and no code it names runs (a custom
`python_function` model, whose `loader_module` is its own code, is refused). The flavor is picked
from what MLflow recorded, and the model's file goes into a folder with the `modelyard.json` that
the matching modelyard flavor loads:

- `sklearn` in skops: the `.skops` file as it is, loaded with skops' safe types as modelyard's own;
- `sklearn` pickled (pickle, cloudpickle): only when trusted: scanned, loaded through the guarded
  unpickler and saved again as skops (so loading it later needs no trust);
- `xgboost`: the `.ubj` or `.json` file as it is, with its `model_class` (an XGBoost class only);
- `lightgbm`: a Booster's text file as it is; a scikit-learn wrapper (skops or pickle) only when
  trusted, loaded and saved again in LightGBM's text format;
- `onnx`: `model.onnx` as it is, run on the CPU provider;
- `pytorch` pickled: only when trusted: scanned and kept as a `torch.save` file (loading it needs
  trust, as for any torch pickle); `pt2` (torch.export) programs are not imported yet.

The signature is translated (tensor-based and column-based specs) and the input example kept.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import UnsafeModel, UnsupportedModel, UntrustedModel
from modelyard.flavors import (
    MODEL_FILE,
    ModelInfo,
    Signature,
    TensorSpec,
    capture_environment,
    datatype_of,
    get_flavor,
    inside,
    load_pickle,
    save_example,
    save_model,
    scan,
)
from modelyard.security import SAFE_SKOPS_TYPES, TrustPolicy

MLMODEL = "MLmodel"
_MAX_MLMODEL = 1 << 20  # an MLmodel file is a few kB; a huge one is not a model description
_COLUMN_TYPES = {
    "double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL",
    "string": "BYTES", "binary": "BYTES",
}  # fmt: skip
_LIGHTGBM_TYPES = ("lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier",
                   "lightgbm.sklearn.LGBMRegressor", "lightgbm.sklearn.LGBMRanker",
                   "collections.OrderedDict")  # fmt: skip
TRUST_HINT = "pass --trust-pickle (trust=True) if you trust whoever logged it"


def is_mlflow_folder(path: str | Path) -> bool:
    """Whether `path` is a folder MLflow wrote (an `MLmodel` file, no `modelyard.json`)."""
    folder = Path(path)
    return (folder / MLMODEL).is_file() and not (folder / MODEL_FILE).exists()


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """The `MLmodel` file of `folder`, parsed with a safe loader and checked for shape."""
    import yaml

    file = inside(folder, MLMODEL, setting="MLmodel")
    if file.stat().st_size > _MAX_MLMODEL:
        raise UnsupportedModel(f"{file} is too large to be an MLflow model description")
    try:
        parsed = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UnsupportedModel(f"{file} is not valid YAML: {error}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("flavors"), dict):
        raise UnsupportedModel(f"{file} has no 'flavors' mapping: it is not an MLflow model")
    return parsed


def flavor_of(mlmodel: Mapping[str, Any]) -> str:
    """The MLflow flavor a folder is converted from (the first one modelyard has)."""
    flavors = mlmodel["flavors"]
    for name in ("onnx", "xgboost", "lightgbm", "sklearn", "pytorch"):
        if isinstance(flavors.get(name), dict):
            return name
    loader = (flavors.get("python_function") or {}).get("loader_module", "?")
    raise UnsupportedModel(
        f"the MLflow model uses only the flavors {', '.join(map(str, flavors))} (loader module "
        f"{loader!r}); modelyard converts sklearn, xgboost, lightgbm, pytorch and onnx models, "
        "and never runs a custom python_function model's own code"
    )


def convert_mlmodel(
    source: str | Path,
    target: str | Path,
    *,
    trust: bool | TrustPolicy = False,
    adopt_pickles: bool = False,
) -> ModelInfo:
    """Write the modelyard folder `target` (created) for the MLflow model folder `source`.

    An untrusted pickle is refused, or with `adopt_pickles` scanned and kept as it is (as
    `modelyard log model.pkl --flavor sklearn` keeps one): loading it then needs trust.

    >>> convert_mlmodel("mlruns/…/artifacts", "out/")   # then yard.log_model("out/", name=…)
    """
    folder, out = Path(source), Path(target)
    mlmodel = read_mlmodel(folder)
    name = flavor_of(mlmodel)
    conf: dict[str, Any] = mlmodel["flavors"][name]
    policy = TrustPolicy.of(trust)
    out.mkdir(parents=True, exist_ok=False)
    example = _example(folder, mlmodel)
    converter = {"sklearn": _sklearn, "xgboost": _xgboost, "lightgbm": _lightgbm,
                 "onnx": _onnx, "pytorch": _pytorch}[name]  # fmt: skip
    info = converter(folder, out, conf, policy, example, adopt_pickles)
    signature = info.signature or translate_signature(mlmodel.get("signature"))
    content = info.example
    if content is None and example is not None:
        content = save_example(example, out)
    final = info.model_copy(update={"signature": signature, "example": content})
    (out / MODEL_FILE).write_text(json.dumps(final.model_dump(mode="json"), indent=2) + "\n")
    return final


# flavors ------------------------------------------------------------------------------------------


def _sklearn(
    folder: Path, out: Path, conf: Mapping[str, Any], policy: TrustPolicy, example: Any, adopt: bool
) -> ModelInfo:
    file = inside(folder, conf.get("pickled_model"), setting="pickled_model")
    if conf.get("serialization_format") == "skops":
        shutil.copy2(file, out / "model.skops")
        settings = {"format": "skops", "file": "model.skops", "method": "predict",
                    "trusted_types": []}  # fmt: skip
        return _info("sklearn", settings)
    if adopt and not policy.pickles:
        return _adopted(file, out, "sklearn", "model.pkl")
    model = load_pickle(file, trust=_trusted(file, policy, kind="pickle"))
    return _resaved(model, out, "sklearn", example)


def _xgboost(
    folder: Path, out: Path, conf: Mapping[str, Any], policy: TrustPolicy, example: Any, adopt: bool
) -> ModelInfo:
    file = inside(folder, conf.get("data"), setting="data")
    cls = str(conf.get("model_class", "xgboost.core.Booster"))
    if cls.split(".")[0] != "xgboost":
        raise UnsupportedModel(f"{folder}: model_class {cls!r} is not a class of XGBoost")
    kind = {".json": "json", ".ubj": "ubj"}.get(file.suffix)
    if kind is None:
        raise UnsupportedModel(
            f"{file}: XGBoost's deprecated binary format is not imported; save the model again "
            "with model_format='ubj' (MLflow's default)"
        )
    shutil.copy2(file, out / file.name)
    return _info("xgboost", {"format": kind, "file": file.name, "class": cls, "method": "predict"})


def _lightgbm(
    folder: Path, out: Path, conf: Mapping[str, Any], policy: TrustPolicy, example: Any, adopt: bool
) -> ModelInfo:
    file = inside(folder, conf.get("data"), setting="data")
    cls = str(conf.get("model_class", "lightgbm.basic.Booster"))
    if cls == "lightgbm.basic.Booster":
        shutil.copy2(file, out / "model.txt")
        settings = {"format": "text", "file": "model.txt", "class": cls, "method": "predict"}
        return _info("lightgbm", settings)
    if conf.get("serialization_format") != "skops":
        model = load_pickle(file, trust=_trusted(file, policy, kind="pickle"))
        return _resaved(model, out, "lightgbm", example)
    if not policy.pickles:
        raise _untrusted(file, "skops file of a LightGBM scikit-learn wrapper")
    skops = require("skops.io", extra="sklearn")
    model = skops.load(file, trusted=sorted({*SAFE_SKOPS_TYPES, *_LIGHTGBM_TYPES}))
    return _resaved(model, out, "lightgbm", example)


def _onnx(
    folder: Path, out: Path, conf: Mapping[str, Any], policy: TrustPolicy, example: Any, adopt: bool
) -> ModelInfo:
    file = inside(folder, conf.get("data"), setting="data")
    shutil.copy2(file, out / "model.onnx")
    settings = {"format": "onnx", "file": "model.onnx", "providers": ["CPUExecutionProvider"]}
    return _info("onnx", settings)


def _pytorch(
    folder: Path, out: Path, conf: Mapping[str, Any], policy: TrustPolicy, example: Any, adopt: bool
) -> ModelInfo:
    data = inside(folder, conf.get("model_data", "data"), setting="model_data")
    if (data / "model.pt2").exists() or conf.get("serialization_format") == "pt2":
        raise UnsupportedModel(
            f"{folder}: MLflow's pt2 (torch.export) models are not imported yet; log the model "
            "with serialization_format='pickle', or load it and log it with modelyard"
        )
    file = inside(folder, f"{conf.get('model_data', 'data')}/model.pth", setting="model_data")
    if not adopt:
        _trusted(file, policy, kind="torch.save (pickle)")
    return _adopted(file, out, "torch", "model.pth")


def _adopted(file: Path, out: Path, flavor: str, name: str) -> ModelInfo:
    """The pickle as it is, scanned now; loading it needs the operator's trust."""
    found = scan(file)
    if found:
        raise UnsafeModel(str(file), imports=found)
    shutil.copy2(file, out / name)
    return _info(flavor, get_flavor(flavor).pickle_settings(name))


def _trusted(file: Path, policy: TrustPolicy, *, kind: str) -> TrustPolicy:
    if not policy.pickles:
        raise _untrusted(file, kind)
    return policy


def _untrusted(file: Path, kind: str) -> UntrustedModel:
    error = UntrustedModel(str(file), kind=kind)
    error.message = (
        f"{file} is a {kind} file, which can run arbitrary code when loaded; {TRUST_HINT} (it "
        "is still checked against an allow-list first)"
    )
    error.args = (error.message,)
    return error


def _resaved(model: Any, out: Path, flavor: str, example: Any) -> ModelInfo:
    out.rmdir()  # save_model wants it absent or empty, and makes it
    return save_model(model, out, flavor=flavor, input_example=example)


def _info(flavor: str, settings: dict[str, Any]) -> ModelInfo:
    packages = get_flavor(flavor).packages
    return ModelInfo(flavor=flavor, settings=settings, environment=capture_environment(packages))


# signature and example ----------------------------------------------------------------------------


def translate_signature(recorded: Any) -> Signature | None:
    """MLflow's signature (tensor-based or column-based JSON) as a modelyard `Signature`, or
    None when it is absent or uses a type with no Open Inference Protocol datatype."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("inputs"), str):
        return None
    try:
        inputs = json.loads(recorded["inputs"])
        outputs = json.loads(recorded["outputs"]) if recorded.get("outputs") else []
        in_specs, content = _specs(inputs, "input")
        out_specs, _ = _specs(outputs, "output")
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return Signature(inputs=in_specs, outputs=out_specs, content_type=content)


def _specs(items: list[dict[str, Any]], prefix: str) -> tuple[list[TensorSpec], Any]:
    specs = []
    tensors = all(item["type"] == "tensor" for item in items)
    for index, item in enumerate(items):
        name = str(item.get("name") or f"{prefix}-{index}")
        if item["type"] == "tensor":
            spec = item["tensor-spec"]
            datatype = datatype_of(np.dtype(spec["dtype"]))
            specs.append(TensorSpec(name=name, datatype=datatype, shape=list(spec["shape"])))
        else:
            specs.append(TensorSpec(name=name, datatype=_COLUMN_TYPES[item["type"]], shape=[-1]))
    if not tensors:
        return specs, "pd"
    return specs, "dict" if len(items) > 1 or items and items[0].get("name") else "np"


def _example(folder: Path, mlmodel: Mapping[str, Any]) -> Any:
    """The input example MLflow saved (`input_example.json`), as an array or a DataFrame."""
    info = mlmodel.get("saved_input_example_info")
    if not isinstance(info, dict) or info.get("type") not in ("ndarray", "dataframe"):
        return None
    file = inside(folder, info.get("artifact_path", ""), setting="artifact_path")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if info["type"] == "ndarray":
            values = data.get("inputs", data) if isinstance(data, dict) else data
            return np.asarray(values)
        pandas = require("pandas", extra="pandas")
        return pandas.DataFrame(data["data"], columns=data["columns"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an example is a convenience: a broken one is left behind
