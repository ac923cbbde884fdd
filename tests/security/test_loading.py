"""Safe loading, attacked file by file: every payload here runs code under a plain loader (it
creates its marker file), and modelyard refuses it, with or without the operator's trust."""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.dummy import DummyRegressor

from modelyard.errors import ModelCrashed, UnsafeModel, UnsupportedModel, UntrustedModel
from modelyard.flavors import (
    allowed,
    inside,
    load_model,
    load_pickle,
    needs_probe,
    probe,
    save_model,
    scan,
)
from modelyard.flavors._pickles import guarded_unpickler
from modelyard.security import TrustPolicy
from tests.flavors.torch_models import MLP
from tests.security.loading_payloads import (
    PAYLOADS,
    computed_call,
    crashing_lightgbm,
    joblib_with_array_first,
    logging_os_system,
    memoized_os_system,
    replace_member,
    skops_popen,
    torch_save,
    write_info,
)

Payload = Callable[[Path], bytes]
TRUSTED = TrustPolicy(pickles=True)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


def settled(marker: Path) -> bool:
    """Whether the marker exists, after giving a spawned process the time to create it."""
    time.sleep(0.3)
    return marker.exists()


# pickles: STACK_GLOBAL, dotted names, getattr chains, computed calls ------------------------------


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_plain_pickle_is_refused_even_when_trusted(
    tmp_path: Path, marker: Path, payload: Payload
) -> None:
    file = tmp_path / "model.pkl"
    file.write_bytes(payload(marker))
    assert scan(file)
    with pytest.raises(UnsafeModel, match="not loaded even though trust=True"):
        load_pickle(file, trust=True)
    assert not settled(marker)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_guarded_unpickler_alone_refuses_it(tmp_path: Path, marker: Path, payload: Payload) -> None:
    # Past any static scan, the unpickler itself refuses the name (or the call) as it loads.
    unpickler = guarded_unpickler(pickle._Unpickler, tmp_path / "x.pkl", TRUSTED)
    with pytest.raises(UnsafeModel):
        unpickler(io.BytesIO(payload(marker))).load()
    assert not settled(marker)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_joblib_is_refused_even_when_trusted(
    tmp_path: Path, marker: Path, payload: Payload
) -> None:
    alone = tmp_path / "alone.joblib"
    alone.write_bytes(payload(marker))
    with pytest.raises(UnsafeModel):
        load_pickle(alone, trust=True)
    if payload is memoized_os_system:
        return  # its memo indices hold only in a pickle of its own
    # An array first: its raw bytes stop any opcode walk, so the guarded load must catch it.
    after_array = tmp_path / "after-array.joblib"
    joblib_with_array_first(after_array, payload(marker))
    with pytest.raises(UnsafeModel):
        load_pickle(after_array, trust=True)
    assert not settled(marker)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_torch_save_is_refused_even_when_trusted(
    tmp_path: Path, marker: Path, payload: Payload
) -> None:
    save_model(MLP(), tmp_path / "model", serialization="pickle")
    torch_save(tmp_path / "model" / "model.pt", payload(marker))
    with pytest.raises(UnsafeModel):
        load_model(tmp_path / "model", trust=True)
    assert not settled(marker)


def test_a_call_of_a_computed_object_is_refused(tmp_path: Path, marker: Path) -> None:
    file = tmp_path / "model.pkl"
    file.write_bytes(computed_call(marker))
    assert scan(file) == ["(a call of an object that is not a named, allowed import)"]
    with pytest.raises(UnsafeModel, match="not a named, allowed import"):
        guarded_unpickler(pickle._Unpickler, file, TRUSTED)(io.BytesIO(file.read_bytes())).load()


def test_the_allow_list() -> None:
    assert allowed("sklearn.linear_model._logistic", "LogisticRegression")
    assert allowed("numpy._core.multiarray", "_reconstruct")
    assert allowed("torch._utils", "_rebuild_tensor_v2")
    assert allowed("collections", "OrderedDict")
    refused = [
        ("logging", "os.system"), ("numpy", "lib.npyio.os.system"), ("posix", "system"),
        ("builtins", "eval"), ("builtins", "getattr"), ("numpy", "memmap"),
        ("numpy.testing", "assert_equal"), ("sklearn.utils._testing", "TempMemmap"),
        ("torch", "load"), ("torch.hub", "load"), ("doctest", "run_docstring_examples"),
        ("sklearn.base", "__class__"), ("pandas", "read_pickle"), ("sklearn", "utils"),
    ]  # fmt: skip
    assert [pair for pair in refused if allowed(*pair)] == []


def test_an_operator_prefix_allows_its_classes_but_no_chain_out_of_them(
    tmp_path: Path, marker: Path
) -> None:
    policy = TrustPolicy(pickles=True, modules=("tests.flavors", "logging"))
    assert allowed("tests.flavors.torch_models", "MLP", policy)
    assert not allowed("tests.flavors.torch_models", "MLP")
    file = tmp_path / "model.pkl"
    file.write_bytes(logging_os_system(marker))  # logging is allowed; logging.os.system is not
    with pytest.raises(UnsafeModel, match=r"logging\.os\.system"):
        load_pickle(file, trust=policy)
    assert not settled(marker)


# skops: trusted types come from the operator ------------------------------------------------------


def test_skops_type_recorded_by_the_uploader_is_not_trusted(tmp_path: Path, marker: Path) -> None:
    folder = tmp_path / "model"
    settings = {"format": "skops", "file": "model.skops", "method": "predict"}
    write_info(folder, "sklearn", {**settings, "trusted_types": ["subprocess.Popen"]})
    (folder / "model.skops").write_bytes(skops_popen(marker))
    for trust in (False, True):
        with pytest.raises(UntrustedModel, match=r"subprocess\.Popen.*trusted_types") as refused:
            load_model(folder, trust=trust)
        assert refused.value.types == ["subprocess.Popen"]
    assert not settled(marker)


# torch: exported programs, classes ---------------------------------------------------------------


def test_exported_program_with_a_pickled_sample_input_is_refused(
    tmp_path: Path, marker: Path
) -> None:
    folder = tmp_path / "model"
    save_model(MLP(), folder, input_example=np.zeros((2, 4), np.float32), export=True)
    evil = tmp_path / "evil.pt"
    torch.save({"x": torch.zeros(1)}, evil)  # a real torch.save archive, then its pickle patched
    torch_save(evil, _os_system(marker))
    replace_member(folder / "model.pt2", "model/data/sample_inputs/model.pt", evil.read_bytes())
    for trust in (False, True):
        with pytest.raises(UnsafeModel, match=r"posix\.system|os\.system"):
            load_model(folder, trust=trust)
    assert not settled(marker)


def _os_system(marker: Path) -> bytes:
    module, name = os.system.__module__, "system"
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"(X" + _len(marker) + b"tR."


def _len(marker: Path) -> bytes:
    command = f"touch {marker}".encode()
    return len(command).to_bytes(4, "little") + command


def test_exported_program_graph_may_only_call_operators(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    save_model(MLP(), folder, input_example=np.zeros((2, 4), np.float32), export=True)
    program = folder / "model.pt2"
    import zipfile

    with zipfile.ZipFile(program) as archive:
        graph = json.loads(archive.read("model/models/model.json"))
    graph["guards_code"] = ["__import__('os').system('true')"]
    text = json.dumps(graph).replace("torch.ops.aten.relu.default", "torch.hub.load")
    replace_member(program, "model/models/model.json", text.encode())
    with pytest.raises(UnsafeModel, match="guards code.*torch.hub.load|torch.hub.load"):
        load_model(folder, trust=True)


def test_torch_class_setting_is_not_imported_without_the_operator(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "sideeffects_net.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nclass Net: pass\n"
    )
    monkeypatch.syspath_prepend(str(code))
    folder = tmp_path / "model"
    save_model(MLP(), folder, export=False, init={})
    info = json.loads((folder / "modelyard.json").read_text())
    info["settings"]["class"] = "sideeffects_net:Net"
    (folder / "modelyard.json").write_text(json.dumps(info))
    with pytest.raises(UntrustedModel, match="sideeffects_net:Net.*trusted_modules"):
        load_model(folder)
    assert "sideeffects_net" not in sys.modules and not marker.exists()
    # Allowed by the operator, it is imported, and still refused: it is no nn.Module.
    with pytest.raises(UnsupportedModel, match="not a torch.nn.Module"):
        load_model(folder, trust=TrustPolicy(modules=("sideeffects_net",)))


# paths in settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.skops", "sub/../../outside.skops"])
def test_settings_paths_stay_inside_the_folder(tmp_path: Path, path: str) -> None:
    folder = tmp_path / "model"
    write_info(folder, "sklearn", {"format": "skops", "file": path, "method": "predict"})
    with pytest.raises(UnsupportedModel, match="absolute path|climbs out"):
        load_model(folder)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    write_info(folder, "lightgbm", {"format": "text", "file": "model.txt"})
    (tmp_path / "elsewhere.txt").write_text("tree\n")
    (folder / "model.txt").symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(UnsupportedModel, match="link to somewhere outside"):
        load_model(folder)
    assert inside(folder, "modelyard.json") == folder / "modelyard.json"


@pytest.mark.parametrize(
    ("flavor", "settings"),
    [
        ("torch", {"format": "export", "program": "/tmp/x.pt2", "weights": "model.safetensors"}),
        ("torch", {"format": "class", "class": "torch.nn:Linear", "weights": "../w.safetensors"}),
        ("pyfunc", {"class": "m:C", "code": "/usr/lib/python3", "artifacts": {}}),
        ("pyfunc", {"class": "m:C", "code": "code", "artifacts": {"a": "../../etc/passwd"}}),
        ("xgboost", {"format": "ubj", "file": "/etc/passwd", "class": "xgboost.core.Booster"}),
        ("onnx", {"format": "onnx", "file": "../model.onnx"}),
    ],
)
def test_every_flavor_checks_its_paths(
    tmp_path: Path, flavor: str, settings: dict[str, object]
) -> None:
    folder = tmp_path / "model"
    write_info(folder, flavor, settings)
    with pytest.raises(UnsupportedModel, match="absolute path|climbs out"):
        load_model(folder, trust=True)


# the policy and the probe -------------------------------------------------------------------------


def test_trust_policy_comes_from_the_operator() -> None:
    assert TrustPolicy.of(False) == TrustPolicy()
    policy = TrustPolicy.of(True, types=["a.B"], modules=["mycompany.models"])
    assert (
        policy.pickles
        and policy.allows_type("a.B")
        and policy.allows_type("sklearn.tree._tree.Tree")
    )
    assert policy.allows_module("mycompany.models.nets") and not policy.allows_module("mycompany")
    assert not policy.allows_module("mycompany.modelsx")
    assert TrustPolicy.of(policy, modules=["other"]).modules == ("mycompany.models", "other")


def test_probe_names_the_file_and_the_signal(tmp_path: Path) -> None:
    folder = crashing_lightgbm(tmp_path / "model")
    with pytest.raises(ModelCrashed, match=r"model\.txt crashed .*SIGABRT") as crashed:
        probe(folder, timeout=60)
    assert crashed.value.signal == "SIGABRT" and crashed.value.status_code == 400
    good = tmp_path / "good"
    save_model(DummyRegressor().fit(np.zeros((2, 3)), [0, 1]), good, input_example=np.zeros((1, 3)))
    probe(good)  # not a probed flavor, but probing still works
    assert not needs_probe("sklearn") and needs_probe("lightgbm") and needs_probe("xgboost")
