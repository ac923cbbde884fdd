"""Text versions through `yard.optimize`: converted to ONNX (the tokenizer stays in the flavor,
ONNX Runtime runs the network) and quantized to int8, each child a text version that loads in a
fresh process and answers as its parent did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

# isort: off
from tests.flavors import text_models  # first: it sets HF_HUB_OFFLINE before transformers loads

# isort: on
import numpy as np
import pytest

from modelyard import Settings, Yard
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors.transformers_tools import TextModel
from tests.flavors.conftest import predict_in_fresh_process

SENTENCES = [*text_models.POSITIVE, *text_models.NEGATIVE]
LABELS = np.asarray(["positive"] * len(text_models.POSITIVE) + ["negative"] * 5)


@pytest.fixture(scope="module")
def trained() -> Any:
    return text_models.trained()


@pytest.fixture
def yard(tmp_path: Path, trained: Any) -> Iterator[Yard]:
    with Yard(Settings(home=tmp_path / "home", user="ana")) as yard:
        yard.log_model(trained, name="sentiment", input_example=SENTENCES[:3],
                       options={"tokenizer": text_models.tokenizer()})  # fmt: skip
        yield yard


def test_convert_and_quantize_keep_the_answers(yard: Yard, tmp_path: Path) -> None:
    parent = yard.load_model("sentiment:1")
    expected = parent.predict(SENTENCES)
    assert expected["label"].tolist() == LABELS.tolist()  # the fixture learnt its sentences

    converted = yard.optimize.convert("sentiment:1", eval_data=(SENTENCES, LABELS))
    version, report = converted.version, converted.report
    assert version.flavor == "transformers" and version.parents == ["sentiment:1"]
    assert report.accepted and report.after.metric == 1.0
    child = yard.load_model(version.ref)
    assert isinstance(child.native, TextModel) and child.native.onnx
    assert child.info.settings["runtime"] == "onnx"
    for name in ("model.onnx", "config.json", "tokenizer.json"):
        assert (child.folder / name).is_file()
    assert not (child.folder / "model.safetensors").exists()
    # Any batch size and text length: both axes are dynamic.
    answer = predict_in_fresh_process(child.folder, {"text": np.asarray(SENTENCES)}, tmp_path)
    assert answer["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(answer["score"], expected["score"], rtol=1e-4)
    assert child.predict(["good"])["label"].shape == (1,)
    with pytest.raises(UnsupportedModel, match="log its folder"):
        yard.log_model(child.native, name="again")

    # A tiny network's matrices gain no speed from int8 (quantizing activations costs more
    # than it saves), so latency is not what this test judges.
    quantized = yard.optimize.quantize(version.ref, eval_data=(SENTENCES, LABELS),
                                       max_slowdown=10)  # fmt: skip
    assert quantized.report.accepted and quantized.report.after.metric == 1.0
    assert quantized.report.after.size_bytes < quantized.report.before.size_bytes
    small = yard.load_model(quantized.version.ref)
    assert small.info.settings["runtime"] == "onnx" and small.flavor.name == "transformers"
    assert small.predict(SENTENCES)["label"].tolist() == LABELS.tolist()
    assert quantized.version.params["optimize.runtime"] == "onnx"


def test_an_encoder_is_quantized_from_its_torch_version(tmp_path: Path) -> None:
    with Yard(Settings(home=tmp_path / "home", user="ana")) as yard:
        yard.log_model(text_models.encoder(), name="embed", input_example=SENTENCES[:2],
                       options={"tokenizer": text_models.tokenizer()})  # fmt: skip
        reference = yard.load_model("embed:1").predict(SENTENCES)["embedding"]

        def similarity(truth: np.ndarray, answer: Any) -> float:
            got = answer["embedding"]
            cosine = (
                (got * truth).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(truth, axis=1)
            )
            return float(cosine.mean())

        result = yard.optimize.quantize("embed:1", eval_data=(SENTENCES, reference),
                                        metric=similarity, max_slowdown=10)  # fmt: skip
        assert result.report.after.metric > 0.95
        child = yard.load_model(result.version.ref)
        assert child.native.onnx
        assert child.predict(SENTENCES)["embedding"].shape == reference.shape


def test_steps_text_versions_cannot_take_are_refused(yard: Yard) -> None:
    data = (SENTENCES, LABELS)
    with pytest.raises(UnsupportedModel, match="dynamic int8 only, not dynamic float16"):
        yard.optimize.quantize("sentiment:1", eval_data=data, dtype="float16")
    with pytest.raises(UnsupportedModel, match="dynamic int8 only, not static int8"):
        yard.optimize.quantize("sentiment:1", eval_data=data, method="static")
    with pytest.raises(ConfigurationError, match="opset must be an integer from 14"):
        yard.optimize.convert("sentiment:1", eval_data=data, opset=9)
