"""Hugging Face transformers: a text model's weights (`model.safetensors`, cut per tensor by the
store), its `config.json`, its tokenizer files and its task; it answers text.

Saved with `save_pretrained`, so the folder is also a plain Hugging Face model folder. Loading
never runs code from the folder: the architecture is the class recorded at save, taken from
transformers itself (or from an installed module the operator trusts, `trusted_modules`), never
from an `auto_map` and never with `trust_remote_code`; nothing is downloaded
(`local_files_only`); pickle-based weights (`pytorch_model.bin`) load only when the operator
trusts pickles, after the pickle scan. A version converted to ONNX keeps the tokenizer and the
config beside `model.onnx`, which ONNX Runtime runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UnsupportedModel, UntrustedModel
from modelyard.flavors import _weight_only as weight_only
from modelyard.flavors import transformers_tools as text
from modelyard.flavors._catalog import flavor
from modelyard.flavors._paths import inside
from modelyard.flavors._pickles import check_trusted
from modelyard.flavors._protocol import Flavor, type_names
from modelyard.security import TrustPolicy

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.json"
ONNX_FILE = "model.onnx"
_PRETRAINED = "transformers.modeling_utils.PreTrainedModel"
_PIPELINE = "transformers.pipelines.base.Pipeline"
_TEXT_MODEL = f"{text.TextModel.__module__}.{text.TextModel.__qualname__}"
_ONNX_GRAPH = "ModelProto"
# Files torch.save (pickle) writes: weights as older transformers saved them, and checkpoints.
_PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
_TASK_NAMES = {"sentiment-analysis": text.CLASSIFICATION}  # pipeline aliases
_DEFAULT_EXAMPLE = ["modelyard answers text"]
_LOAD_STATE = frozenset({"is_local", "local_files_only", "trust_remote_code", "_commit_hash"})


@flavor
class TransformersFlavor(Flavor):
    """transformers text models: a `PreTrainedModel` with `options={"tokenizer": tok,
    "task": "text-classification"}`, or a text `Pipeline` (model, tokenizer and task in one).

    Tasks: `text-classification` answers `label` and `score` per text; `feature-extraction`
    answers an `embedding` per text (the mean of its token states). The task is taken from the
    pipeline, the `task` option, or the class (`…ForSequenceClassification` classifies, a base
    `…Model` extracts features). `max_length` (default: what the tokenizer and the position
    embeddings allow) is where long texts are cut.
    """

    name = "transformers"
    extra = "transformers"
    reads_any_form = True  # texts in every form: see `transformers_tools.texts`
    packages = ("transformers", "tokenizers", "torch", "safetensors")

    def matches(self, model: object) -> bool:
        return bool({_PRETRAINED, _PIPELINE, _TEXT_MODEL} & type_names(model))

    def prepare(self, model: Any, example: Any, **options: Any) -> tuple[Any, Any]:
        # The network with its tokenizer and task (what answering text needs), and the example
        # as one input named `text` (BYTES), whatever form the caller gave the texts in.
        native = _text_model(model, options.get("tokenizer"), options.get("task"),
                             options.get("max_length"))  # fmt: skip
        texts = text.texts(_DEFAULT_EXAMPLE if example is None else example)
        return native, {text.INPUT: np.asarray(texts)}

    def save(
        self,
        model: Any,
        path: Path,
        *,
        example: Any = None,
        tokenizer: Any = None,
        task: str | None = None,
        max_length: int | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        native = _text_model(model, tokenizer, task, max_length)
        if native.onnx and (native.config is None or hasattr(native.network, "get_inputs")):
            # A session cannot be written back: the version it came from holds its graph.
            raise UnsupportedModel(
                "an ONNX text model is saved from its graph and config; to log a loaded ONNX "
                "version again, log its folder (yard.download, then log_model(folder))"
            )
        with text.quiet():
            if native.onnx:
                require("onnx", extra="onnx").save_model(native.network, path / ONNX_FILE)
                native.config.save_pretrained(path)
                runtime: dict[str, Any] = {"runtime": "onnx", "file": ONNX_FILE}
            elif weight_only.weight_only_layers(native.network):  # int8/int4 Linear layers
                runtime = {"runtime": "torch", "class": _location(type(native.network)),
                           "weight_only": weight_only.save_text(native.network, path)}  # fmt: skip
            else:
                native.network.save_pretrained(path)
                runtime = {"runtime": "torch", "class": _location(type(native.network))}
            native.tokenizer.save_pretrained(path)
        _without_call_state(path / TOKENIZER_FILE)
        _without_load_state(path / TOKENIZER_CONFIG)
        return {**runtime, "task": native.task, "labels": native.labels,
                "max_length": native.max_length}  # fmt: skip

    def load(self, path: Path, settings: Mapping[str, Any], *, trust: TrustPolicy) -> Any:
        task, labels, max_length = _checked_settings(path, settings)
        runtime = settings.get("runtime")
        if runtime not in ("torch", "onnx"):
            raise UnsupportedModel(f"{path}: unknown transformers runtime {runtime!r}")
        custom = _check_class(path, settings.get("class"), trust) if runtime == "torch" else None
        _check_folder(path, trust, trusted_class=custom is not None)
        with text.quiet():
            tokenizer = _load_tokenizer(path)
            if runtime == "onnx":
                from modelyard.flavors.onnx_tools import CPU, session

                network = session(str(inside(path, settings.get("file"))), [CPU])
                config = _load_config(path)
                return text.TextModel(network, tokenizer, task, labels, max_length, config)
            cls = custom or _class(path, settings.get("class"))
            if "weight_only" in settings:  # int8/int4 Linear layers, checked tensor by tensor
                network = weight_only.load_text(path, cls, settings["weight_only"])
            else:
                network = _load_network(path, cls)
        return text.TextModel(network, tokenizer, task, labels, max_length, network.config)

    def predict(self, model: Any, inputs: Any, settings: Mapping[str, Any]) -> Any:
        if not isinstance(model, text.TextModel):  # a pipeline brings its tokenizer
            model = _text_model(model, None, settings.get("task"), settings.get("max_length"))
        return text.predict_text(model, inputs)

    def describe(self, model: Any) -> dict[str, Any]:
        native = _text_model(model, None, None, None)
        summary: dict[str, Any] = {
            "task": native.task,
            "model_type": getattr(native.config, "model_type", None),
            "labels": native.labels,
        }
        if not native.onnx:
            summary["class"] = _location(type(native.network))
            summary["parameters"] = sum(p.numel() for p in native.network.parameters())
        return summary


# saving -------------------------------------------------------------------------------------------


def _text_model(
    model: Any,
    tokenizer: Any,
    task: str | None,
    max_length: int | None,
) -> text.TextModel:
    """The model with its tokenizer, task, labels and length: from a pipeline, a `TextModel`,
    or a `PreTrainedModel` and the options."""
    names = type_names(model)
    if _TEXT_MODEL in names:
        return model  # type: ignore[no-any-return]
    if _PIPELINE in names:
        tokenizer = tokenizer if tokenizer is not None else model.tokenizer
        task = task or model.task
        model = model.model
    if tokenizer is None or not callable(getattr(tokenizer, "save_pretrained", None)):
        raise ConfigurationError(
            "a transformers model needs its tokenizer: log it with options={'tokenizer': "
            "tokenizer, 'task': 'text-classification'}, or log a pipeline"
        )
    if _PRETRAINED not in type_names(model):
        raise UnsupportedModel(f"the transformers flavor saves PreTrainedModels, not {type(model)}")
    task = _task(model, task)
    labels = _labels(model.config)
    if task == text.CLASSIFICATION and len(labels) < 2:
        raise ConfigurationError(
            "text-classification needs a model with two or more labels (config.num_labels)"
        )
    return text.TextModel(model, tokenizer, task, labels, _max_length(model, tokenizer, max_length),
                          model.config)  # fmt: skip


def _without_call_state(file: Path) -> None:
    """`tokenizer.json` without the padding and truncation of the tokenizer's last call, which
    it records: the same tokenizer saves the same bytes (stored once) however it was used."""
    if not file.is_file():
        return
    document = json.loads(file.read_text(encoding="utf-8"))
    if document.get("padding") is None and document.get("truncation") is None:
        return
    document.update(padding=None, truncation=None)
    file.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")


def _without_load_state(file: Path) -> None:
    """`tokenizer_config.json` without how the tokenizer was last loaded (`local_files_only`
    and the like, which a loaded tokenizer writes back): a version loaded and logged again
    stores the same bytes."""
    if not file.is_file():
        return
    document = json.loads(file.read_text(encoding="utf-8"))
    if not _LOAD_STATE & document.keys():
        return
    kept = {key: value for key, value in document.items() if key not in _LOAD_STATE}
    # As transformers writes it, so that the bytes match a tokenizer saved fresh.
    file.write_text(json.dumps(kept, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")  # fmt: skip


def _task(model: Any, task: str | None) -> str:
    task = _TASK_NAMES.get(task or "", task)
    if task is None:
        # By the class, or the first transformers class it extends that says: a head
        # (`BertFor…`) or a base model (`BertModel`; `BertPreTrainedModel` says nothing).
        for cls in type(model).__mro__:
            name = cls.__name__
            if "For" in name:
                if name.endswith("ForSequenceClassification"):
                    return text.CLASSIFICATION
                break
            if name.endswith("Model") and not name.endswith("PreTrainedModel"):
                return text.FEATURES
        raise ConfigurationError(
            f"cannot tell the task of a {type(model).__name__}; pass options={{'task': ...}}, "
            f"one of {', '.join(text.TASKS)}"
        )
    if task not in text.TASKS:
        raise ConfigurationError(
            f"unsupported transformers task {task!r}; use one of {', '.join(text.TASKS)}"
        )
    return task


def _labels(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(index, f"LABEL_{index}")) for index in range(len(id2label))]


def _max_length(model: Any, tokenizer: Any, given: int | None) -> int:
    """Where texts are cut: what the tokenizer says (it may say 10**30: no limit) and what the
    position embeddings allow, or the caller's `max_length` within those."""
    limits = [
        int(value)
        for value in (
            getattr(tokenizer, "model_max_length", None),
            getattr(model.config, "max_position_embeddings", None),
        )  # fmt: skip
        if isinstance(value, int) and 0 < value < 10**9
    ]
    if given is not None:
        if type(given) is not int or given < 1:
            raise ConfigurationError(f"max_length must be a positive integer, not {given!r}")
        limits.append(given)
    return min(limits, default=512)


def _location(cls: type) -> str:
    """`transformers:Class` for a class of transformers, `module:Class` for any other."""
    transformers = require("transformers", extra="transformers")
    if getattr(transformers, cls.__name__, None) is cls:
        return f"transformers:{cls.__name__}"
    return f"{cls.__module__}:{cls.__qualname__}"


# loading ------------------------------------------------------------------------------------------


def _checked_settings(path: Path, settings: Mapping[str, Any]) -> tuple[str, list[str], int | None]:
    task, labels, max_length = settings.get("task"), settings.get("labels", []), settings.get(
        "max_length")  # fmt: skip
    if task not in text.TASKS:
        raise UnsupportedModel(f"{path}: unknown transformers task {task!r}")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise UnsupportedModel(f"{path}: the transformers 'labels' setting must be strings")
    if max_length is not None and (type(max_length) is not int or max_length < 1):
        raise UnsupportedModel(f"{path}: the transformers 'max_length' setting is not a length")
    return task, labels, max_length


def _check_class(path: Path, location: Any, trust: TrustPolicy) -> type | None:
    """A class of another module than transformers, if the operator trusts that module (and
    it is installed); None for a class of transformers itself. Refused before any import."""
    if not isinstance(location, str) or location.count(":") != 1:
        raise UnsupportedModel(f"{path}: the transformers 'class' setting must be 'module:Class'")
    module, _, qualname = location.partition(":")
    if module == "transformers":
        return None
    if not trust.allows_module(module):
        raise UntrustedModel(
            str(path / "modelyard.json"), kind="transformers 'class' setting", types=[location],
            setting="trusted_modules",
        )  # fmt: skip
    from modelyard.flavors.torch_tools import resolve

    try:
        cls = resolve(module, qualname)
    except (ImportError, AttributeError) as error:
        raise UnsupportedModel(f"{path}: cannot import {location}: {error}") from None
    return _pretrained_class(path, cls, location)


def _class(path: Path, location: Any) -> type:
    transformers = require("transformers", extra="transformers")
    name = location.partition(":")[2]
    cls = getattr(transformers, name, None) if name.isidentifier() else None
    return _pretrained_class(path, cls, location)


def _pretrained_class(path: Path, cls: Any, location: str) -> type:
    base = require("transformers", extra="transformers").PreTrainedModel
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UnsupportedModel(f"{path}: {location} is not a transformers PreTrainedModel class")
    return cls


def _check_folder(path: Path, trust: TrustPolicy, *, trusted_class: bool) -> None:
    """Refuse what would run code: an `auto_map` (code in the folder) unless the operator
    trusts the installed class that stands for it, and pickled files unless trusted and clean."""
    for name in (CONFIG_FILE, TOKENIZER_CONFIG):
        document = _json(path, name)
        mapped = document.get("auto_map")
        if mapped and not trusted_class:
            classes = mapped.values() if isinstance(mapped, dict) else [mapped]
            raise UntrustedModel(
                str(path / name), kind="auto_map (code shipped in the model folder)",
                types=sorted({str(entry) for entry in classes}), setting="trusted_modules",
                hint="; modelyard never runs a model folder's code: install the architecture as "
                "a package, trust its module, and log the model from that class",
            )  # fmt: skip
    for file in sorted(path.iterdir()):
        if file.suffix.lower() in _PICKLED and file.is_file():
            check_trusted(file, trust=trust, kind="pickled weights (torch.save)")


def _json(path: Path, name: str) -> dict[str, Any]:
    file = path / name
    if not file.is_file():
        raise UnsupportedModel(f"{path} holds no {name}, which a transformers version needs")
    try:
        document = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UnsupportedModel(f"{file} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise UnsupportedModel(f"{file} must be a JSON object")
    return document


def _load_tokenizer(path: Path) -> Any:
    """The tokenizer class its config names, if transformers has it (never an `auto_map`)."""
    transformers = require("transformers", extra="transformers")
    name = _json(path, TOKENIZER_CONFIG).get("tokenizer_class") or "PreTrainedTokenizerFast"
    cls: Any = getattr(transformers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedTokenizerBase)):
        raise UnsupportedModel(f"{path}: {name!r} is not a tokenizer class of transformers")
    tokenizer_class: Any = cls  # a tokenizer class of transformers, checked above
    try:
        return tokenizer_class.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise UnsupportedModel(f"{path}: cannot load the tokenizer: {error}") from None


def _load_config(path: Path) -> Any:
    """The config beside an ONNX graph, as its model type's class (for its labels and to save
    it again), never through an `auto_map`."""
    transformers = require("transformers", extra="transformers")
    model_type = _json(path, CONFIG_FILE).get("model_type")
    known = isinstance(model_type, str) and model_type in transformers.CONFIG_MAPPING
    cls = transformers.CONFIG_MAPPING[model_type] if known else transformers.PretrainedConfig
    try:
        return cls.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise UnsupportedModel(f"{path}: cannot load {CONFIG_FILE}: {error}") from None


def _load_network(path: Path, cls: Any) -> Any:
    broken = require("safetensors", extra="transformers").SafetensorError
    try:
        network = cls.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=False,
            # pickled weights only when there are no others, and the check above passed
            use_safetensors=any(path.glob("*.safetensors")),
        )  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, broken) as error:
        raise UnsupportedModel(f"{path}: cannot load the transformers model: {error}") from None
    return network.eval()
