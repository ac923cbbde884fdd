"""The transformers flavor: tiny models built here from a config (nothing is downloaded), saved
with their tokenizer and task, loaded without running any of the folder's code, answering text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# isort: off
from tests.flavors import text_models  # first: it sets HF_HUB_OFFLINE before transformers loads

# isort: on
import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from modelyard.errors import (
    ConfigurationError,
    InvalidInput,
    UnsafeModel,
    UnsupportedModel,
    UntrustedModel,
)
from modelyard.flavors import flavor_for, get_flavor, load_model, save_model
from modelyard.flavors.transformers_tools import TextModel, quiet, texts
from modelyard.security import TrustPolicy
from tests.flavors.conftest import predict_in_fresh_process
from tests.flavors.malicious import SystemCall

SENTENCES = [*text_models.POSITIVE, *text_models.NEGATIVE]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return text_models.tokenizer()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """A classifier saved once; tests that change it work on a copy."""
    folder = tmp_path_factory.mktemp("saved") / "model"
    save_model(text_models.classifier(), folder, tokenizer=tokenizer, input_example=SENTENCES[:2])
    return folder


def copy_of(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "model"))


def reference(model: Any, tokenizer: Any, sentences: list[str]) -> np.ndarray:
    """Class probabilities computed by hand with transformers."""
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return torch.softmax(model(**batch).logits, dim=1).numpy()


def test_matches_transformers_models_and_pipelines_only(tokenizer: Any) -> None:
    flavor, model = get_flavor("transformers"), text_models.classifier()
    assert flavor.matches(model)
    assert flavor.matches(transformers.pipeline("text-classification", model=model,
                                                tokenizer=tokenizer))  # fmt: skip
    assert not flavor.matches(torch.nn.Linear(2, 2)) and not flavor.matches(np.zeros(3))
    # A PreTrainedModel is a torch Module too: the torch flavor leaves it to this one.
    assert not get_flavor("torch").matches(model)
    assert flavor_for(model) is flavor


def test_round_trip_in_a_fresh_process(saved: Path, tmp_path: Path, tokenizer: Any) -> None:
    info = json.loads((saved / "modelyard.json").read_text())
    assert info["flavor"] == "transformers"
    assert info["settings"] == {
        "runtime": "torch", "class": "transformers:BertForSequenceClassification",
        "task": "text-classification", "labels": ["negative", "positive"], "max_length": 64,
    }  # fmt: skip
    signature = info["signature"]
    assert signature["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert signature["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "score", "datatype": "FP32", "shape": [-1]},
    ]
    assert info["summary"]["parameters"] > 10_000 and info["summary"]["model_type"] == "bert"
    # A plain Hugging Face folder: safetensors weights, config and tokenizer files.
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (saved / name).is_file()
    answer = predict_in_fresh_process(saved, {"text": np.asarray(SENTENCES)}, tmp_path)
    with quiet():
        model = transformers.BertForSequenceClassification.from_pretrained(saved)
    expected = reference(model, tokenizer, SENTENCES)
    np.testing.assert_allclose(answer["score"], expected.max(axis=1), rtol=1e-5)
    labels = np.asarray(["negative", "positive"])[expected.argmax(axis=1)]
    assert answer["label"].tolist() == labels.tolist()


def test_texts_come_in_every_form_a_caller_or_a_server_gives(saved: Path) -> None:
    model = load_model(saved)
    assert isinstance(model.native, TextModel) and not model.native.onnx
    one = model.predict(["good movie"])
    frame = pd.DataFrame({"text": ["good movie"], "other": [1]})
    for form in ("good movie", b"good movie", np.asarray([["good movie"]], dtype=object),
                 {"text": np.asarray(["good movie"])}, {"review": ["good movie"]}, frame,
                 pd.DataFrame({"review": ["good movie"]})):  # fmt: skip
        answer = model.predict(form)
        assert answer["label"].tolist() == one["label"].tolist()
        np.testing.assert_allclose(answer["score"], one["score"], rtol=1e-6)
    # Long inputs are cut at max_length (64 positions here) instead of failing.
    long = model.predict(["good " * 500, "bad"])
    assert long["label"].shape == (2,)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([1, 2], "must be strings"),
        ([b"\xff\xfe"], "not UTF-8"),
        ({"a": ["x"], "b": ["y"]}, "one input 'text'"),
        (np.asarray([["a", "b"]]), r"shape \[1, 2\]"),
        ([], "holds no texts"),
    ],
)
def test_what_is_not_text_is_refused_with_its_reason(inputs: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        texts(inputs) if message != "holds no texts" else get_flavor("transformers").predict(
            TextModel(None, None, "text-classification"), inputs, {}
        )


def test_a_pipeline_brings_its_tokenizer_and_task(tmp_path: Path, tokenizer: Any) -> None:
    model = text_models.classifier()
    pipe = transformers.pipeline("sentiment-analysis", model=model, tokenizer=tokenizer)
    info = save_model(pipe, tmp_path / "model")  # no example: the flavor makes one
    assert info.settings["task"] == "text-classification"
    assert info.signature is not None and info.signature.inputs[0].name == "text"
    answer = load_model(tmp_path / "model").predict(SENTENCES)
    expected = reference(model, tokenizer, SENTENCES)
    np.testing.assert_allclose(answer["score"], expected.max(axis=1), rtol=1e-5)
    # A pipeline predicts directly too (its tokenizer travels with it).
    direct = get_flavor("transformers").predict(pipe, SENTENCES[:2], info.settings)
    assert direct["label"].tolist() == answer["label"][:2].tolist()


def test_feature_extraction_answers_one_embedding_per_text(tmp_path: Path, tokenizer: Any) -> None:
    encoder = text_models.encoder()
    info = save_model(encoder, tmp_path / "model", tokenizer=tokenizer, max_length=16)
    assert info.settings["task"] == "feature-extraction" and info.settings["max_length"] == 16
    assert info.signature is not None
    assert info.signature.outputs[0].model_dump() == {
        "name": "embedding", "datatype": "FP32", "shape": [-1, 32]
    }  # fmt: skip
    answer = load_model(tmp_path / "model").predict(SENTENCES)["embedding"]
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        states = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = ((states * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(answer, expected, rtol=1e-4, atol=1e-5)


def test_a_tokenizer_without_padding_answers_one_text_at_a_time(tmp_path: Path) -> None:
    tokenizer = text_models.tokenizer()
    tokenizer.pad_token = None
    save_model(text_models.classifier(), tmp_path / "model", tokenizer=tokenizer)
    answer = load_model(tmp_path / "model").predict(SENTENCES[:3])
    assert answer["score"].shape == (3,)


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("classifier", {}, "needs its tokenizer"),
        ("classifier", {"tokenizer": "tok", "task": "fill-mask"}, "unsupported transformers task"),
        ("masked", {"tokenizer": "tok"}, "cannot tell the task of a BertForMaskedLM"),
        ("one-label", {"tokenizer": "tok"}, "two or more labels"),
        ("classifier", {"tokenizer": "tok", "max_length": 0}, "max_length must be"),
        ("linear", {"tokenizer": "tok"}, "saves PreTrainedModels"),
    ],
)
def test_save_refuses_what_it_cannot_answer_text_with(
    tmp_path: Path, tokenizer: Any, model: str, options: dict[str, Any], message: str
) -> None:
    built = {
        "classifier": text_models.classifier,
        "masked": lambda: transformers.BertForMaskedLM(text_models.config()),
        "one-label": lambda: transformers.BertForSequenceClassification(
            text_models.config(num_labels=1, id2label={0: "only"}, label2id={"only": 0})
        ),
        "linear": lambda: torch.nn.Linear(2, 2),
    }[model]()
    options = {k: tokenizer if v == "tok" else v for k, v in options.items()}
    with pytest.raises(ConfigurationError if model != "linear" else UnsupportedModel,
                       match=message):  # fmt: skip
        save_model(built, tmp_path / "model", flavor="transformers", **options)
    assert not (tmp_path / "model" / "model.safetensors").exists()


# loading never runs the folder's code ----------------------------------------------------------


EVIL_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("pwned")
from transformers import BertForSequenceClassification as Evil
"""


def plant_code(folder: Path, marker: Path, file: str = "config.json") -> None:
    """What a Hub repository with custom code holds: a module, and an auto_map naming it."""
    (folder / "modeling_evil.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    config = json.loads((folder / file).read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.Evil"}
    (folder / file).write_text(json.dumps(config))


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json"])
def test_an_auto_map_to_code_in_the_folder_is_refused(
    saved: Path, tmp_path: Path, file: str
) -> None:
    folder, marker = copy_of(saved, tmp_path), tmp_path / "marker"
    plant_code(folder, marker, file)
    for trust in (False, True):  # trusting pickles does not trust a folder's code
        with pytest.raises(UntrustedModel, match=r"auto_map .* modeling_evil\.Evil"):
            load_model(folder, trust=trust)
    assert not marker.exists()


def test_a_class_outside_transformers_needs_trust(tmp_path: Path, tokenizer: Any) -> None:
    model = text_models.TinyClassifier(text_models.config()).eval()
    save_model(model, tmp_path / "model", tokenizer=tokenizer)
    folder, marker = tmp_path / "model", tmp_path / "marker"
    settings = json.loads((folder / "modelyard.json").read_text())["settings"]
    assert settings["class"] == "tests.flavors.text_models:TinyClassifier"
    with pytest.raises(UntrustedModel, match="trusted_modules"):
        load_model(folder)
    # Trusted, the installed class is used; the folder's auto_map (and its code) never are.
    plant_code(folder, marker)
    loaded = load_model(folder, trust=TrustPolicy(modules=("tests.flavors",)))
    assert type(loaded.native.network) is text_models.TinyClassifier
    assert loaded.predict(["good"])["label"].shape == (1,)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("setting", "value", "error", "message"),
    [
        ("class", "builtins:eval", UntrustedModel, "builtins:eval"),
        ("class", "transformers:AutoConfig", UnsupportedModel, "not a transformers PreTrained"),
        ("class", "transformers:no such", UnsupportedModel, "not a transformers PreTrained"),
        ("class", "BertModel", UnsupportedModel, "must be 'module:Class'"),
        ("class", "tests.nowhere:Model", UnsupportedModel, "cannot import"),
        ("task", "text-generation", UnsupportedModel, "unknown transformers task"),
        ("labels", [1], UnsupportedModel, "'labels' setting must be strings"),
        ("max_length", -1, UnsupportedModel, "'max_length' setting"),
        ("runtime", "jax", UnsupportedModel, "unknown transformers runtime"),
    ],
)
def test_settings_from_the_folder_are_checked(
    saved: Path, tmp_path: Path, setting: str, value: Any, error: type[Exception], message: str
) -> None:
    folder = copy_of(saved, tmp_path)
    info = json.loads((folder / "modelyard.json").read_text())
    info["settings"][setting] = value
    (folder / "modelyard.json").write_text(json.dumps(info))
    with pytest.raises(error, match=message):
        load_model(folder, trust=TrustPolicy(modules=("tests",)))


def test_a_tokenizer_class_must_be_one_of_transformers(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "os"}))
    with pytest.raises(UnsupportedModel, match="'os' is not a tokenizer class"):
        load_model(folder)
    (folder / "tokenizer_config.json").write_text("[1]")
    with pytest.raises(UnsupportedModel, match="must be a JSON object"):
        load_model(folder)
    (folder / "tokenizer_config.json").write_text("{")
    with pytest.raises(UnsupportedModel, match="is not JSON"):
        load_model(folder)
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(UnsupportedModel, match="holds no tokenizer_config.json"):
        load_model(folder)


def test_broken_files_give_a_typed_error(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(UnsupportedModel, match="cannot load the tokenizer"):
        load_model(folder)
    folder = copy_of(saved, tmp_path / "again")
    (folder / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(UnsupportedModel, match="cannot load the transformers model"):
        load_model(folder)


def pickled_weights(saved: Path, tmp_path: Path, extra: Any = None) -> Path:
    """The folder with its weights as older transformers saved them: `pytorch_model.bin`."""
    from safetensors.torch import load_file

    folder = copy_of(saved, tmp_path)
    state: dict[str, Any] = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({**state, **({"extra": extra} if extra is not None else {})},
               folder / "pytorch_model.bin")  # fmt: skip
    return folder


def test_pickled_weights_load_only_when_trusted(saved: Path, tmp_path: Path) -> None:
    folder = pickled_weights(saved, tmp_path)
    with pytest.raises(UntrustedModel, match=r"pytorch_model\.bin is a pickled weights"):
        load_model(folder)
    expected = load_model(saved).predict(SENTENCES)
    answer = load_model(folder, trust=True).predict(SENTENCES)
    np.testing.assert_allclose(answer["score"], expected["score"], rtol=1e-6)


def test_a_malicious_pickle_is_refused_even_when_trusted(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = pickled_weights(saved, tmp_path, extra=SystemCall(marker))
    with pytest.raises(UnsafeModel, match="system"):
        load_model(folder, trust=True)
    # Beside safetensors weights, a pickle is refused all the same: nothing pickled is loaded
    # without the operator's trust and a clean scan.
    shutil.copy(saved / "model.safetensors", folder)
    with pytest.raises(UnsafeModel, match="system"):
        load_model(folder, trust=True)
    assert not marker.exists()


def test_a_loaded_model_saves_the_same_files_again(saved: Path, tmp_path: Path) -> None:
    loaded = load_model(saved)
    loaded.predict(SENTENCES)  # a call leaves padding and truncation set on the tokenizer
    info = save_model(loaded.native, tmp_path / "again", input_example=SENTENCES[:2])
    assert info.settings == loaded.info.settings
    # Same bytes: the store keeps one copy, and `diff` finds nothing changed.
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "again" / name).read_bytes() == (saved / name).read_bytes(), name
