"""Weight-only int8 and int4 (`quantize(method="weight-only")`): the Linear layers of a torch
MLP and of a tiny transformers classifier keep int8 or int4 weights, the child is a version of
the same flavor that loads in a fresh process and answers bit for bit as it did here, and a
crafted file (settings or tensors) is refused with a typed error, never run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# isort: off
from tests.flavors import text_models  # first: it sets HF_HUB_OFFLINE before transformers loads

# isort: on
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from modelyard import Settings, Yard
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import load_model, save_model
from modelyard.flavors.torch_tools import quantize_weights
from tests.flavors.conftest import OPERATOR, predict_in_fresh_process
from tests.optimize.models import DigitsMLP

SENTENCES = [*text_models.POSITIVE, *text_models.NEGATIVE]
LABELS = np.asarray(["positive"] * len(text_models.POSITIVE) + ["negative"] * 5)
GROUPS = {"int8": None, "int4": 32}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mlp(yard: Yard, digits_mlp: Any, digits: Any) -> str:
    x, _, _, _ = digits
    version = yard.log_model(digits_mlp, name="mlp", input_example=x[:5],
                             options={"export": False, "init": {"hidden": 64}})  # fmt: skip
    return version.ref


@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_an_mlp_becomes_a_smaller_child_that_answers_alike(
    yard: Yard, mlp: str, digits: Any, dtype: str, tmp_path: Path
) -> None:
    _, _, x, y = digits
    result = yard.optimize.quantize(mlp, eval_data=(x, y), method="weight-only", dtype=dtype,
                                    group_size=GROUPS[dtype], max_slowdown=None)  # fmt: skip
    version, report = result.version, result.report
    assert [(e.parent, e.relation) for e in yard.lineage(version.ref).edges] == [(mlp, "quantize")]
    assert version.flavor == "torch" and version.params["optimize.method"] == "weight-only"
    assert report.accepted and abs(report.metric_change) <= 0.01
    assert report.after.size_bytes < report.before.size_bytes / (2.5 if dtype == "int8" else 3)
    # int4: the output layer (10 classes, not a multiple of 16 rows) stays float
    assert version.params["optimize.kept_float"] == ("0" if dtype == "int8" else "1")
    child = yard.load_model(version.ref)
    assert child.info.settings["weight_only"]["dtype"] == dtype
    here = child.predict(x)
    fresh = predict_in_fresh_process(child.folder, x, tmp_path)
    assert fresh.dtype == here.dtype and np.array_equal(fresh, here)


@pytest.fixture(scope="module")
def trained() -> Any:
    return text_models.trained()


@pytest.fixture
def text_yard(tmp_path: Path, trained: Any) -> Iterator[Yard]:
    with Yard(Settings(home=tmp_path / "home", user="ana")) as yard:
        yard.log_model(trained, name="sentiment", input_example=SENTENCES[:3],
                       options={"tokenizer": text_models.tokenizer()})  # fmt: skip
        yield yard


def test_a_text_classifier_keeps_its_labels(text_yard: Yard, tmp_path: Path) -> None:
    children = {}
    for dtype, group in GROUPS.items():
        result = text_yard.optimize.quantize(
            "sentiment:1", eval_data=(SENTENCES, LABELS), method="weight-only", dtype=dtype,
            group_size=group, max_slowdown=None,
        )  # fmt: skip
        version, report = result.version, result.report
        assert version.flavor == "transformers" and version.parents == ["sentiment:1"]
        assert report.accepted and report.after.metric == 1.0
        assert report.after.size_bytes < report.before.size_bytes
        # the tiny config's 37-wide feed-forward layers are what the kernels cannot take
        assert int(version.params["optimize.kept_float"]) > 0
        children[dtype] = text_yard.load_model(version.ref)
    for child in children.values():
        assert (child.folder / "weight-only.safetensors").is_file()
        assert not (child.folder / "model.safetensors").exists()  # Hugging Face would misread it
    # one fresh interpreter for both (importing transformers is most of the time)
    script = (
        "import sys, json; from modelyard.flavors import load_model; "
        "print(json.dumps([load_model(f).predict(json.loads(sys.argv[1]))['score'].tolist() "
        "for f in sys.argv[2:]]))"
    )
    folders = [str(child.folder) for child in children.values()]
    command = [sys.executable, "-c", script, json.dumps(SENTENCES), *folders]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    for child, scores in zip(children.values(), fresh, strict=True):
        here = child.predict(SENTENCES)
        assert here["label"].tolist() == LABELS.tolist()
        assert np.array_equal(np.asarray(scores, np.float32), here["score"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "weight-only", "dtype": "float16"}, "weight-only quantization is int8 or int4"),
        ({"dtype": "int4"}, "int4 is weight-only"),
        ({"method": "weight-only", "dtype": "int4", "group_size": 48}, "group_size must be one of"),
        ({"method": "weight-only", "group_size": 32}, "group_size is for method='weight-only' "
                                                       "with dtype='int4'"),
    ],
)  # fmt: skip
def test_requests_that_do_not_go_together_are_refused(
    yard: Yard, mlp: str, digits: Any, options: dict[str, Any], message: str
) -> None:
    _, _, x, y = digits
    with pytest.raises(ConfigurationError, match=message):
        yard.optimize.quantize(mlp, eval_data=(x, y), **options)
    assert [v.ref for v in yard.list_versions("mlp")] == [mlp]


def test_an_onnx_version_is_refused(yard: Yard) -> None:
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, 2), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [weights],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.ones((3, 4), np.float32)
    ref = yard.log_model(model, name="graph", input_example=x).ref
    with pytest.raises(UnsupportedModel, match="torch and transformers versions, not onnx"):
        yard.optimize.quantize(ref, eval_data=(x, np.zeros(3)), method="weight-only")


def test_layers_the_kernels_cannot_take_stay_float_or_are_refused() -> None:
    # in_features 40: neither a multiple of 16 (int8) nor of the group size (int4)
    mixed = DigitsMLP(inputs=40, hidden=64, classes=16, depth=2).eval()
    child, done = quantize_weights(mixed, dtype="int4", group_size=32)
    assert done == {"group_size": 32, "layers": 2, "kept_float": 1}
    assert type(child.layers[0]) is torch.nn.Linear and type(mixed.layers[2]) is torch.nn.Linear
    narrow = DigitsMLP(inputs=40, hidden=40, classes=10, depth=2).eval()
    with pytest.raises(UnsupportedModel, match="none of the 3 Linear layers .* int8 needs inputs"):
        quantize_weights(narrow, dtype="int8")
    with pytest.raises(UnsupportedModel, match="try a smaller group_size"):
        quantize_weights(DigitsMLP(inputs=64, hidden=64, depth=1), dtype="int4", group_size=128)
    with pytest.raises(UnsupportedModel, match="weight-only quantized already"):
        quantize_weights(child, dtype="int8")


# crafted files ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An int8 and an int4 weight-only MLP saved as a version folder (class-rebuilt)."""
    torch.manual_seed(0)
    folders = {}
    for dtype, group in GROUPS.items():
        child, _ = quantize_weights(DigitsMLP(hidden=64).eval(), dtype=dtype, group_size=group)
        folder = tmp_path_factory.mktemp(dtype) / "model"
        save_model(child, folder, input_example=np.zeros((2, 64), np.float32),
                   export=False, init={"hidden": 64})  # fmt: skip
        folders[dtype] = folder
    return folders


def _settings(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        info = json.loads((folder / "modelyard.json").read_text())
        change(info["settings"]["weight_only"])
        (folder / "modelyard.json").write_text(json.dumps(info))

    return edit


def _info(folder: Path, weight_only: Any) -> None:
    info = json.loads((folder / "modelyard.json").read_text())
    info["settings"]["weight_only"] = weight_only
    (folder / "modelyard.json").write_text(json.dumps(info))


def _tensors(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        tensors = dict(load_file(folder / "model.safetensors"))
        change(tensors)
        save_file(tensors, folder / "model.safetensors")

    return edit


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda mapping: mapping.__setitem__(key, value)


ATTACKS: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("int8", "not a mapping", lambda f: _info(f, ["layers.0"]), "must be a mapping"),
    ("int8", "empty", _settings(lambda s: s.clear()), "names dtype None"),
    ("int8", "unknown key", _settings(_set("code", "os.system")), "unknown key 'code'"),
    ("int8", "unknown dtype", _settings(_set("dtype", "int2")), "names dtype 'int2'"),
    ("int4", "odd group", _settings(_set("group_size", 48)), "int4 group size 48"),
    ("int4", "group as text", _settings(_set("group_size", "32")), "int4 group size '32'"),
    ("int8", "int8 group", _settings(_set("group_size", 32)), "gives int8 a group size"),
    ("int8", "not a Linear", _settings(_set("layers", ["layers.1"])), "not a Linear layer"),
    ("int8", "no such layer", _settings(_set("layers", ["layers.99"])), "not a Linear layer"),
    ("int8", "dunder name", _settings(_set("layers", ["__class__"])), "not a Linear layer"),
    ("int8", "path name", _settings(_set("layers", ["../x"])), "'layers' must be a list"),
    ("int8", "layer twice", _settings(_set("layers", ["layers.0", "layers.0"])), "layer twice"),
    ("int8", "tie to nothing", _settings(_set("tied", {"a.b": "nowhere"})), "does not fit"),
    ("int4", "int4 on 10 rows", _settings(_set("layers", ["layers.0", "layers.6"])),
     "'layers.6' .* cannot be int4"),
    ("int8", "float weights", _tensors(lambda t: t.update({
        "layers.0.weight_int8": t["layers.0.weight_int8"].float()})), "needs int8"),
    ("int8", "wrong shape", _tensors(lambda t: t.update({
        "layers.0.weight_int8": t["layers.0.weight_int8"][:, :32].contiguous()})), "needs int8"),
    ("int4", "short zeros", _tensors(lambda t: t.update({
        "layers.0.weight_zero": t["layers.0.weight_zero"][:1].contiguous()})), "weight_zero"),
    ("int8", "NaN scale", _tensors(lambda t: t["layers.2.weight_scale"].fill_(float("nan"))),
     "infinities or NaNs"),
    ("int8", "no scale", _tensors(lambda t: t.pop("layers.0.weight_scale")), "is missing"),
    ("int8", "no bias", _tensors(lambda t: t.pop("layers.0.bias")), "'layers.0.bias' is missing"),
    ("int8", "extra tensor", _tensors(lambda t: t.update({"extra": torch.zeros(1)})),
     "'extra' is unexpected"),
    ("int4", "float layer reshaped", _tensors(lambda t: t.update({
        "layers.6.weight": torch.zeros(10, 3)})), "'layers.6.weight' is float32 \\[10, 3\\]"),
    ("int8", "not safetensors", lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 64),
     "not a readable safetensors file"),
]  # fmt: skip


@pytest.mark.parametrize(("dtype", "attack", "edit", "message"), ATTACKS,
                         ids=[attack for _, attack, _, _ in ATTACKS])  # fmt: skip
def test_a_crafted_file_is_refused(
    saved: dict[str, Path],
    tmp_path: Path,
    dtype: str,
    attack: str,
    edit: Callable[[Path], None],
    message: str,
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(saved[dtype], folder)
    load_model(folder, trust=OPERATOR)  # the untouched copy loads
    edit(folder)
    with pytest.raises(UnsupportedModel, match=message):
        load_model(folder, trust=OPERATOR)


def test_a_crafted_text_version_is_refused(text_yard: Yard, tmp_path: Path) -> None:
    result = text_yard.optimize.quantize("sentiment:1", eval_data=(SENTENCES, LABELS),
                                         method="weight-only", max_slowdown=None)  # fmt: skip
    folder = tmp_path / "model"
    shutil.copytree(text_yard.load_model(result.version.ref).folder, folder)
    info = json.loads((folder / "modelyard.json").read_text())
    info["settings"]["weight_only"]["file"] = "../../outside.safetensors"
    (folder / "modelyard.json").write_text(json.dumps(info))
    with pytest.raises(UnsupportedModel, match="climbs out of the model folder"):
        load_model(folder)
    info["settings"]["weight_only"]["file"] = "weight-only.safetensors"
    (folder / "modelyard.json").write_text(json.dumps(info))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    with pytest.raises(UnsupportedModel, match="is int8 \\[32, 32\\].* needs int8 \\[64, 64\\]"):
        load_model(folder)
