"""Static int8 of torch versions through an exported program (PT2E, torchao): a child version
whose int8 weights are stored as int8, answering the same in a fresh process that never
imports torchao, and the errors around it (no calibration, a module export cannot trace,
torchao missing, a crafted program)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelyard import Settings, Yard
from modelyard.errors import ConfigurationError, MissingDependency, UnsafeModel, UnsupportedModel
from modelyard.flavors import load_model
from modelyard.optimize import Optimized
from modelyard.optimize._pt2e import quantize_static
from tests.optimize.models import DigitsMLP, one_thread, train
from tests.security.loading_payloads import replace_member

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = 256  # wide enough that the weights, not the program's graph, make most of the bytes


class Branchy(torch.nn.Module):
    """Control flow on the values of its input: torch.export cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.linear(x)
        return -self.linear(x)


@pytest.fixture(scope="module")
def static(
    tmp_path_factory: pytest.TempPathFactory, digits: Any
) -> Iterator[tuple[Yard, Optimized]]:
    """A wide digits MLP (`mlp:1`, its class rebuilds it) and its static int8 child."""
    x, y, x_test, y_test = digits
    home = tmp_path_factory.mktemp("pt2e") / "home"
    with one_thread():
        mlp = train(DigitsMLP(hidden=HIDDEN), x, y, epochs=6)
        with Yard(Settings(home=home, user="ana", trusted_modules=["tests"])) as yard:
            yard.log_model(mlp, name="mlp", input_example=x_test[:5],
                           options={"export": False, "init": {"hidden": HIDDEN}})  # fmt: skip
            # Latency is not judged: run eagerly, PT2E's reference int8 operations are slower.
            result = yard.optimize.quantize(
                "mlp:1", eval_data=(x_test, y_test), method="static", calibration=x[:256],
                max_slowdown=None, alias="int8",
            )  # fmt: skip
            yield yard, result


def test_static_int8_is_a_child_version(static: tuple[Yard, Optimized]) -> None:
    yard, result = static
    version, report = result.version, result.report
    assert version.ref == "mlp:2" and yard.get_version("mlp@int8").ref == "mlp:2"
    assert [(e.parent, e.child, e.relation) for e in yard.lineage("mlp:2").edges] == [
        ("mlp:1", "mlp:2", "quantize")
    ]
    assert report.settings == {"dtype": "int8", "method": "static", "backend": "x86-pt2e"}
    assert version.params["optimize.method"] == "static"
    assert version.params["optimize.backend"] == "x86-pt2e"
    assert report.accepted and not report.forced
    assert abs(report.after.metric - report.before.metric) <= 0.01
    assert report.size_ratio > 2  # after / before < 0.5
    assert yard.optimize.report("mlp:2") == report


def test_int8_weights_are_stored_as_int8(static: tuple[Yard, Optimized]) -> None:
    from safetensors import safe_open

    yard, _ = static
    parent, child = (yard.model_folder(yard.get_version(ref)) for ref in ("mlp:1", "mlp:2"))
    settings = json.loads((child / "modelyard.json").read_text())["settings"]
    assert settings["format"] == "export"
    with safe_open(child / "model.safetensors", "pt") as stored:
        dtypes = {name: stored.get_slice(name).get_dtype() for name in stored.keys()}
    assert sorted(dtypes.values()).count("I8") == 4  # one per Linear layer
    assert "F32" in dtypes.values()  # biases and scales stay float
    weights = (child / "model.safetensors").stat().st_size
    assert weights < 0.3 * (parent / "model.safetensors").stat().st_size  # no float copy left


def test_a_fresh_process_answers_the_same_without_torchao(
    static: tuple[Yard, Optimized], digits: Any, tmp_path: Path
) -> None:
    yard, _ = static
    _, _, x, _ = digits
    np.save(tmp_path / "x.npy", x[:64])
    script = (
        "import sys\nimport numpy as np\nfrom modelyard import Settings, Yard\n"
        "with Yard(Settings(home=sys.argv[1], user='ana')) as yard:\n"
        "    answer = yard.load_model('mlp:2').predict(np.load(sys.argv[2]))\n"
        "np.save(sys.argv[3], answer)\n"
        "assert 'torchao' not in sys.modules, 'loading imported torchao'\n"
    )
    # No trusted modules there: an exported program rebuilds from the files alone.
    subprocess.run(
        [sys.executable, "-c", script, str(yard.settings.home), str(tmp_path / "x.npy"),
         str(tmp_path / "fresh.npy")],
        check=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    fresh = np.load(tmp_path / "fresh.npy")
    here = yard.load_model("mlp:2").predict(x[:64])
    assert fresh.dtype == here.dtype and np.array_equal(fresh, here)


@pytest.mark.parametrize(
    "target",
    [
        "torch.ops.quantized_decomposed.choose_qparams.tensor",
        "torch.ops.quantized_decomposed.quantize_per_tensor.default.__call__",
        "torch.ops.quantized_decomposedx.quantize_per_tensor.default",
    ],
)
def test_a_crafted_program_calling_other_operators_is_refused(
    static: tuple[Yard, Optimized], tmp_path: Path, target: str
) -> None:
    import shutil

    yard, _ = static
    folder = tmp_path / "model"
    shutil.copytree(yard.model_folder(yard.get_version("mlp:2")), folder)
    program = folder / "model.pt2"
    with zipfile.ZipFile(program) as archive:
        graph = archive.read("model/models/model.json").decode()
    assert "torch.ops.quantized_decomposed.quantize_per_tensor.default" in graph
    crafted = graph.replace("torch.ops.quantized_decomposed.quantize_per_tensor.default", target)
    replace_member(program, "model/models/model.json", crafted.encode())
    with pytest.raises(UnsafeModel, match="a graph call of"):
        load_model(folder, trust=True)


def test_static_needs_calibration_and_int8(yard: Yard, digits_mlp: Any, digits: Any) -> None:
    _, _, x, y = digits
    yard.log_model(digits_mlp, name="mlp", input_example=x[:5],
                   options={"export": False, "init": {"hidden": 64}})  # fmt: skip
    with pytest.raises(ConfigurationError, match="static int8 needs calibration= inputs"):
        yard.optimize.quantize("mlp:1", eval_data=(x, y), method="static")
    with pytest.raises(ConfigurationError, match="static quantization makes int8, not float16"):
        yard.optimize.quantize("mlp:1", eval_data=(x, y), method="static", dtype="float16",
                               calibration=x[:8])  # fmt: skip
    assert [v.ref for v in yard.list_versions("mlp")] == ["mlp:1"]


def test_a_module_export_cannot_trace_is_refused_clearly(yard: Yard, digits: Any) -> None:
    _, _, x, y = digits
    yard.log_model(Branchy().eval(), name="branchy", input_example=x[:5],
                   options={"export": False, "init": {}})  # fmt: skip
    with pytest.raises(UnsupportedModel, match=r"torch\.export, which could not trace Branchy"):
        yard.optimize.quantize("branchy:1", eval_data=(x, y), method="static", calibration=x[:8])
    assert [v.ref for v in yard.list_versions("branchy")] == ["branchy:1"]


@pytest.mark.parametrize(
    "calibration",
    [np.float32(1.0), np.zeros((0, 64), np.float32),
     {"a": np.zeros((4, 64), np.float32), "b": np.zeros((3, 64), np.float32)}],
)  # fmt: skip
def test_calibration_must_be_rows(calibration: Any) -> None:
    with pytest.raises(ConfigurationError, match="calibration= must be rows of inputs"):
        quantize_static(DigitsMLP(hidden=8), calibration)


def test_without_torchao_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e", None)  # as if not installed
    with pytest.raises(MissingDependency, match="'optimize' extra"):
        quantize_static(DigitsMLP(hidden=8), np.zeros((4, 64), np.float32))


def test_a_parent_stored_as_a_program_quantizes_too(
    yard: Yard, digits_mlp: Any, digits: Any
) -> None:
    x, _, x_test, y_test = digits
    yard.log_model(digits_mlp, name="mlp", input_example=x_test[:5], options={"export": True})
    result = yard.optimize.quantize("mlp:1", eval_data=(x_test, y_test), method="static",
                                    calibration=x[:128], max_slowdown=None)  # fmt: skip
    assert result.version.parents == ["mlp:1"] and result.report.accepted
