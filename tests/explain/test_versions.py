"""What registration stores for explanations, global importance, and the explainer cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.svm import SVR

from modelyard import Yard
from modelyard.errors import ConfigurationError
from modelyard.explain import (
    BACKGROUND_FILE,
    IMPORTANCE_FILE,
    ExplainerCache,
    GlobalImportance,
    explain_version,
    global_importance,
    read_background,
    stored_importance,
)
from tests.explain.models import Labeller
from tests.flavors.pyfunc_models import Spend


def test_registration_stores_real_background_rows_and_the_importance(
    yard: Yard, regression: Any
) -> None:
    x, y = regression
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(x, y)
    version = yard.log_model(model, name="forest", input_example=x[:2], reference_data=x)
    folder = yard.load_model(version.ref).folder
    stored = read_background(folder)
    assert stored is not None
    rows, features = stored
    assert rows.shape == (100, 6) and features.names == tuple(f"x{i}" for i in range(6))
    # Every background row is a row of the reference data, not a mix of columns.
    assert all(np.any(np.all(x == row, axis=1)) for row in rows)
    importance = stored_importance(yard, version.ref)
    assert importance is not None and (importance.explainer, importance.rows) == ("tree", 300)
    assert importance.output == "value" and len(importance.importance) == 6
    again = GlobalImportance.model_validate_json((folder / IMPORTANCE_FILE).read_text())
    assert again == importance == global_importance(yard, version.ref)
    ranked = importance.ranked()
    assert ranked == sorted(ranked, key=lambda pair: -pair[1]) and len(importance.ranked(2)) == 2


def test_nothing_is_stored_without_reference_data_or_numeric_inputs(yard: Yard) -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    plain = yard.log_model(LinearRegression().fit(x, x[:, 0]), name="plain", input_example=x[:2])
    assert stored_importance(yard, plain.ref) is None
    with pytest.raises(ConfigurationError, match="log it with reference_data="):
        explain_version(yard, plain.ref, x[:2])  # linear SHAP needs a background
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, x[:, 0])
    trees = yard.log_model(forest, name="trees", input_example=x[:2])
    assert explain_version(yard, trees.ref, x[:2]).explainer == "tree"  # needs no background
    with pytest.raises(ConfigurationError, match="pass data to compute the importance on"):
        global_importance(yard, trees.ref)
    assert global_importance(yard, trees.ref, x).rows == 50
    # ... unless the caller brings one.
    given = explain_version(yard, plain.ref, x[:2], background=x)
    assert given.explainer == "linear"
    frame = pd.DataFrame({"amount": np.arange(20.0), "country": ["fr", "de"] * 10})
    spend = yard.log_model(Spend(), name="spend", input_example=frame[:2], reference_data=frame)
    folder = yard.load_model(spend.ref, trust=True).folder
    assert not (folder / "explain").exists() and stored_importance(yard, spend.ref) is None
    labels = yard.log_model(Labeller(), name="labels", input_example=x[:2], reference_data=x)
    assert stored_importance(yard, labels.ref) is None  # words: no explainer fits
    assert read_background(yard.load_model(labels.ref, trust=True).folder) is not None


def test_a_logged_folder_gets_its_own_explanation_files(yard: Yard, regression: Any) -> None:
    x, y = regression
    model = LinearRegression().fit(x, y)
    first = yard.log_model(model, name="lin", input_example=x[:2], reference_data=x)
    folder = yard.load_model(first.ref).folder
    copy = yard.log_model(folder, name="svr-like", reference_data=x[:40])
    stored = stored_importance(yard, copy.ref)
    assert stored is not None and stored.rows == 40
    rows, _ = read_background(yard.load_model(copy.ref).folder) or (None, None)
    assert rows is not None and len(rows) == 40
    svr = yard.log_model(SVR().fit(x, y), name="svr", input_example=x[:2], reference_data=x)
    svr_folder = yard.load_model(svr.ref).folder
    assert (svr_folder / BACKGROUND_FILE).is_file() and not (svr_folder / IMPORTANCE_FILE).exists()
    # A folder holding an old importance is logged with new reference data that only kernel
    # SHAP can explain: the old file must not survive as if it were this version's.
    (svr_folder.parent / "mixed").mkdir()
    mixed = svr_folder.parent / "mixed" / "svr"
    import shutil

    shutil.copytree(svr_folder, mixed)
    shutil.copy(folder / IMPORTANCE_FILE, mixed / IMPORTANCE_FILE)
    relogged = yard.log_model(mixed, name="svr", reference_data=x[:30])
    assert stored_importance(yard, relogged.ref) is None


def test_importance_on_demand(yard: Yard, regression: Any) -> None:
    x, y = regression
    yard.log_model(SVR().fit(x, y), name="svr", input_example=x[:2], reference_data=x)
    computed = global_importance(yard, "svr", max_rows=3)  # over the stored background rows
    assert (computed.explainer, computed.rows) == ("kernel", 3)
    frame = pd.DataFrame(x, columns=[f"c{i}" for i in range(6)])
    lime = global_importance(yard, "svr", x[:2], explainer="lime")
    assert (lime.explainer, lime.rows, lime.features) == ("lime", 2, [f"x{i}" for i in range(6)])
    model = LinearRegression().fit(frame, y)
    yard.log_model(model, name="frame", input_example=frame[:2], reference_data=frame)
    sampled = global_importance(yard, "frame", frame, explainer="linear", max_rows=50)
    assert sampled.rows == 50 and sampled.features == list(frame.columns)
    columns = {name: frame[name].to_numpy() for name in frame.columns}
    assert global_importance(yard, "frame", columns, explainer="linear", max_rows=7).rows == 7


def test_the_cache_keeps_built_explainers_per_version(yard: Yard, regression: Any) -> None:
    x, y = regression
    one = yard.log_model(LinearRegression().fit(x, y), name="lin", reference_data=x)
    two = yard.log_model(LinearRegression().fit(x, -y), name="lin", reference_data=x)
    cache = ExplainerCache(size=2)
    first = explain_version(yard, "lin:1", x[:2], cache=cache)
    assert len(cache) == 1 and (one.manifest_digest, "") in cache
    built = cache.get((str(one.manifest_digest), ""), build=failing)  # not built again
    np.testing.assert_allclose(built.explain(x[:2]).values, first.values)
    explain_version(yard, "lin:2", x[:2], cache=cache)
    explain_version(yard, "lin:1", x[:2], explainer="kernel", cache=cache)
    assert len(cache) == 2 and (one.manifest_digest, "") not in cache  # the least recent went
    assert (two.manifest_digest, "") in cache and (one.manifest_digest, "kernel") in cache
    explain_version(yard, "lin:1", x[:2], background=x[:10], cache=cache)  # not kept
    assert len(cache) == 2 and (one.manifest_digest, "") not in cache


def failing() -> Any:
    raise AssertionError("built again")


def test_explanations_travel_with_the_version(tmp_path: Path, regression: Any) -> None:
    from modelyard import Settings

    x, y = regression
    with Yard(Settings(home=tmp_path / "a")) as yard:
        version = yard.log_model(LinearRegression().fit(x, y), name="lin", reference_data=x)
        yard.download(version.ref, tmp_path / "copy")
    assert (tmp_path / "copy" / IMPORTANCE_FILE).is_file()
    assert (tmp_path / "copy" / BACKGROUND_FILE).is_file()


def test_without_the_explain_extra(
    yard: Yard, regression: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from modelyard.errors import MissingDependency

    x, y = regression
    monkeypatch.setitem(sys.modules, "shap", None)  # as if it were not installed
    version = yard.log_model(LinearRegression().fit(x, y), name="lin", reference_data=x)
    assert stored_importance(yard, version.ref) is None  # registration still works
    assert read_background(yard.load_model(version.ref).folder) is not None  # for later
    fix = r"pip install .*shap.*\(modelyard's 'explain' extra"
    with pytest.raises(MissingDependency, match=fix):
        explain_version(yard, version.ref, x[:2])
