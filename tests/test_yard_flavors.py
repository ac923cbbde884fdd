"""The client with framework objects: log, load, diff down to tensors, merge; locally, through
the API in-process, and against a real server on PostgreSQL."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from modelyard import Yard
from modelyard.errors import IncompatibleModels, UnsafeModel, UntrustedModel
from tests.flavors.malicious import SystemCall

RNG = np.random.default_rng(7)
X = RNG.random((40, 3))
Y = (X[:, 0] > 0.5).astype(int)


def weights_folder(path: Path, tensors: dict[str, np.ndarray]) -> Path:  # type: ignore[type-arg]
    path.mkdir(parents=True)
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text('{"layers": 2}')
    return path


def test_log_and_load_a_framework_object(yard: Yard) -> None:
    model = LogisticRegression().fit(X, Y)
    version = yard.log_model(model, name="churn", input_example=X[:4], metrics={"auc": 0.9})
    assert version.flavor == "sklearn"
    assert version.signature is not None
    assert version.signature["inputs"] == [
        {"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}
    ]
    loaded = yard.load_model("churn:1")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.signature is not None
    again = yard.load_model("churn")  # from the cache this time
    assert again.folder == loaded.folder
    np.testing.assert_array_equal(again.input_example(), X[:4])


def test_log_options_reach_the_flavor(yard: Yard) -> None:
    model = LogisticRegression().fit(X, Y)
    yard.log_model(model, name="churn", options={"serialization": "joblib"})
    with pytest.raises(UntrustedModel, match="joblib file"):
        yard.load_model("churn")
    assert yard.load_model("churn", trust=True).predict(X[:2]).shape == (2,)


def test_pickle_file_is_scanned_when_logged(yard: Yard, tmp_path: Path) -> None:
    good = tmp_path / "model.pkl"
    good.write_bytes(pickle.dumps(LogisticRegression().fit(X, Y)))
    version = yard.log_model(good, name="churn", flavor="sklearn")
    assert version.flavor == "sklearn"
    with pytest.raises(UntrustedModel):
        yard.load_model("churn")
    assert yard.load_model("churn", trust=True).predict(X).shape == (40,)
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(SystemCall(marker)))
    with pytest.raises(UnsafeModel, match="posix.system"):
        yard.log_model(bad, name="churn", flavor="sklearn")
    assert yard.get_model("churn").latest_version == 1
    assert not marker.exists()


def test_torch_save_file_is_scanned_when_logged(yard: Yard, tmp_path: Path) -> None:
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    torch.save(module, tmp_path / "model.pt")
    yard.log_model(tmp_path / "model.pt", name="net", flavor="torch")
    with pytest.raises(UntrustedModel, match="torch.save"):
        yard.load_model("net")
    inputs = X[:4].astype(np.float32)
    expected = module(torch.from_numpy(inputs)).detach().numpy()
    np.testing.assert_array_equal(yard.load_model("net", trust=True).predict(inputs), expected)
    marker = tmp_path / "pwned"
    torch.save({"weights": torch.zeros(2), "hook": SystemCall(marker)}, tmp_path / "bad.pt")
    with pytest.raises(UnsafeModel, match="system"):
        yard.log_model(tmp_path / "bad.pt", name="net", flavor="torch")
    assert not marker.exists()


def test_torch_module_versions_diff_and_merge(yard: Yard) -> None:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    example = X[:2].astype(np.float32)
    yard.log_model(module, name="net", input_example=example)
    with torch.no_grad():
        module[2].weight[0, 0] += 1.0
    yard.log_model(module, name="net", input_example=example)
    tensors = yard.diff("net:1", "net:2").tensors
    assert [(t.name, t.status, t.fraction) for t in tensors] == [("2.weight", "changed", 1 / 8)]
    merged = yard.merge("net:1", "net:2")
    loaded = yard.load_model(merged.ref)
    assert loaded.predict(example).shape == (2, 2)
    assert loaded.info.settings["format"] == "export"


def test_diff_names_tree_changes(yard: Yard) -> None:
    yard.log_model(GradientBoostingRegressor(n_estimators=5, max_depth=2).fit(X, Y), name="gb")
    yard.log_model(GradientBoostingRegressor(n_estimators=8, max_depth=3).fit(X, Y), name="gb")
    changes = {c.key: (c.a, c.b) for c in yard.diff("gb:1", "gb:2").model}
    assert changes["trees"] == (5, 8)
    assert changes["hyperparameters.max_depth"] == (2, 3)
    assert changes["hyperparameters.n_estimators"] == (5, 8)


def test_diff_measures_changed_tensors(yard: Yard, tmp_path: Path) -> None:
    base = {f"layer{i}.weight": RNG.standard_normal((8, 4)).astype(np.float32) for i in range(4)}
    changed = dict(base)
    changed["layer1.weight"] = base["layer1.weight"].copy()
    changed["layer1.weight"][0, :2] += np.float32(0.5)
    changed["layer3.weight"] = RNG.standard_normal((4, 4)).astype(np.float32)
    changed["extra.bias"] = np.zeros(4, np.float32)
    del changed["layer2.weight"]
    yard.log_model(weights_folder(tmp_path / "a", base), name="net")
    yard.log_model(weights_folder(tmp_path / "b", changed), name="net")
    tensors = {t.name: t for t in yard.diff("net:1", "net:2").tensors}
    assert {name: t.status for name, t in tensors.items()} == {
        "extra.bias": "added",
        "layer1.weight": "changed",
        "layer2.weight": "removed",
        "layer3.weight": "shape-changed",
    }
    layer1 = tensors["layer1.weight"]
    assert layer1.fraction == pytest.approx(2 / 32)
    assert layer1.max_abs == pytest.approx(0.5, rel=1e-6)
    assert layer1.l2 == pytest.approx(np.sqrt(2 * 0.25), rel=1e-5)


def test_merge_averages_weights_with_both_parents(yard: Yard, tmp_path: Path) -> None:
    a = {"w": np.ones((2, 2), np.float32), "steps": np.array([3], np.int64)}
    b = {"w": np.full((2, 2), 3.0, np.float32), "steps": np.array([5], np.int64)}
    yard.log_model(weights_folder(tmp_path / "a", a), name="net")
    yard.log_model(weights_folder(tmp_path / "b", b), name="net")
    merged = yard.merge("net:1", "net:2", weights=(0.25, 0.75), alias="soup")
    assert merged.parents == ["net:1", "net:2"]
    assert yard.get_version("net@soup").number == 3
    lineage = yard.lineage("net:3")
    assert set(lineage.ancestors) == {"net:1", "net:2"}
    assert {(e.parent, e.relation) for e in lineage.edges if e.child == "net:3"} == {
        ("net:1", "merge"),
        ("net:2", "merge"),
    }
    out = yard.download("net:3", tmp_path / "out")
    from safetensors.numpy import load_file

    tensors = load_file(str(out / "model.safetensors"))
    np.testing.assert_array_equal(tensors["w"], np.full((2, 2), 2.5, np.float32))
    np.testing.assert_array_equal(tensors["steps"], a["steps"])
    assert (out / "config.json").read_text() == '{"layers": 2}'
    yard.log_model(weights_folder(tmp_path / "c", {"w": np.ones((3, 2), np.float32)}), name="net")
    with pytest.raises(IncompatibleModels, match="w"):
        yard.merge("net:1", "net:4")


def test_parallel_loads_of_one_version_share_the_cache(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from modelyard import Settings

    with Yard(Settings(home=tmp_path / "home")) as yard:
        yard.log_model(LogisticRegression().fit(X, Y), name="churn")
        with ThreadPoolExecutor(8) as pool:
            loaded = list(pool.map(lambda _: yard.load_model("churn"), range(8)))
        assert len({model.folder for model in loaded}) == 1
        cached = [p.name for p in (tmp_path / "home/cache").iterdir() if p.name != ".marks"]
        assert cached == [loaded[0].folder.name]  # beside the marks of verified folders


def test_a_version_names_the_step_that_made_it(yard: Yard) -> None:
    from modelyard.errors import ConfigurationError

    model = LogisticRegression().fit(X, Y)
    yard.log_model(model, name="churn")
    yard.log_model(model, name="churn", parents=["churn:1"], relation="quantize",
                   params={"quantize.dtype": "qint8"})  # fmt: skip
    (edge,) = yard.lineage("churn:2").edges
    assert (edge.parent, edge.child, edge.relation) == ("churn:1", "churn:2", "quantize")
    assert yard.get_version("churn:2").params["quantize.dtype"] == "qint8"
    with pytest.raises(ConfigurationError, match="relation 'Not OK!' must be 1-32 lowercase"):
        yard.log_model(model, name="churn", relation="Not OK!")
    assert yard.get_model("churn").latest_version == 2
