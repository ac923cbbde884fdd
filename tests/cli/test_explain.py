"""`modelyard explain REF --input FILE` and the importance `modelyard versions show` prints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import typer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from typer.testing import CliRunner

from modelyard import Yard
from modelyard.cli._app import root
from modelyard.cli._explain import explain
from modelyard.explain import stored_importance
from tests.cli.test_registry import home, ok
from tests.explain.test_plots import png_size

_ = home  # the autouse fixture: a fresh MODELYARD_HOME per test

# The command as the root app registers it: `app.command("explain")(explain)`.
cli = typer.Typer()
cli.callback()(root)
cli.command("explain")(explain)

FRAME, LABELS = load_breast_cancer(return_X_y=True, as_frame=True)
FRAME = FRAME.iloc[:, :6]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["explain", *args])
    return result.exit_code, result.stdout, result.stderr


def explained(*args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, err
    return out


@pytest.fixture
def cancer(home: Path) -> Path:
    """A classifier of six named columns, logged with reference data; its rows as files."""
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(FRAME, LABELS)
    with Yard() as yard:
        yard.log_model(model, name="cancer", input_example=FRAME[:3], reference_data=FRAME,
                       alias="production")  # fmt: skip
    folder = home.parent / "rows"
    folder.mkdir()
    FRAME[:5].to_csv(folder / "rows.csv", index=False)
    FRAME[:5].to_parquet(folder / "rows.parquet")
    (folder / "rows.json").write_text(FRAME[:5].to_json(orient="records"))
    (folder / "one.json").write_text(FRAME[:1].to_json(orient="columns"))
    return folder


def test_rows_of_a_table_explained(cancer: Path, tmp_path: Path) -> None:
    summary = explained("cancer@production", "--input", str(cancer / "rows.csv"))
    assert summary.startswith(
        "cancer:1: tree explainer, 5 rows, explaining the log-odds of class 1"
    )
    assert "mean |contribution|" in summary and len(summary.splitlines()) == 3 + 6
    for name in ("rows.parquet", "rows.json"):
        assert explained("cancer", "-i", str(cancer / name)) == summary
    row = explained("cancer", "--input", str(cancer / "rows.csv"), "--row", "2", "--top", "3")
    assert "row 2: log-odds of class 1" in row and "= base value" in row
    assert "(and 3 other features:" in row and len(row.splitlines()) == 1 + 2 + 3 + 1
    single = explained("cancer", "--input", str(cancer / "one.json"))
    assert "row 0:" in single and "other features" not in single
    document = json.loads(explained("cancer", "-i", str(cancer / "rows.csv"), "--json"))
    assert document["model"] == "cancer:1" and document["explainer"] == "tree"
    assert np.asarray(document["values"]).shape == (5, 6)
    bars, waterfall = tmp_path / "bars.png", tmp_path / "row.png"
    assert explained("cancer", "-i", str(cancer / "rows.csv"), "--plot", str(bars)).endswith(
        f"wrote {bars}\n"
    )
    explained("cancer", "-i", str(cancer / "rows.csv"), "--plot", str(waterfall), "--row", "4")
    assert png_size(bars)[0] == png_size(waterfall)[0] == 800
    lime = json.loads(explained("cancer", "-i", str(cancer / "rows.json"), "--explainer",
                                "lime", "--json"))  # fmt: skip
    assert lime["explainer"] == "lime" and lime["output"] == "probability of class 1"


def test_arrays_and_request_bodies(home: Path) -> None:
    x = np.random.default_rng(0).normal(size=(200, 4))
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, x[:, 0] * 2)
    with Yard() as yard:
        yard.log_model(model, name="forest", input_example=x[:2], reference_data=x)
    folder = home.parent
    np.save(folder / "rows.npy", x[:3])
    pd.DataFrame(x[:3], columns=list("abcd")).to_csv(folder / "rows.csv", index=False)
    body = {"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64",
                        "data": x[:3].ravel().tolist()}]}  # fmt: skip
    (folder / "body.json").write_bytes(orjson.dumps(body))
    answers = [
        json.loads(explained("forest", "-i", str(folder / name), "--json"))["values"]
        for name in ("rows.npy", "rows.csv", "body.json")
    ]
    assert answers[0] == answers[1] == answers[2]
    assert "x0" in explained("forest", "-i", str(folder / "rows.npy"))
    labels = np.digitize(x[:, 0], [-0.5, 0.5])
    three = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, labels)
    with Yard() as yard:
        yard.log_model(three, name="three", input_example=x[:2])
    shown = explained("three", "-i", str(folder / "rows.npy"), "--row", "0")
    predicted = int(three.predict(x[:1])[0])
    assert f"row 0: probability of the predicted class ({predicted!r})" in shown


def test_what_the_command_refuses(cancer: Path) -> None:
    (cancer / "rows.txt").write_text("1,2,3")
    (cancer / "broken.json").write_text("{")
    (cancer / "scalar.json").write_text("3")
    refusals = [
        (("cancer", "-i", str(cancer / "rows.txt")), 1, "cannot read .*rows.txt: use a .parquet"),
        (("cancer", "-i", str(cancer / "broken.json")), 1, "the input file is not valid JSON"),
        (("cancer", "-i", str(cancer / "scalar.json")), 1, "must hold an /infer request body"),
        (("cancer", "-i", str(cancer / "rows.csv"), "--row", "5"), 1, "row 5 is not in"),
        (("cancer", "-i", str(cancer / "nope.csv")), 2, "does not exist"),
        (("cancer", "-i", str(cancer / "rows.csv"), "--explainer", "deep"), 1,
         "the deep explainer explains torch modules only"),
        (("nope", "-i", str(cancer / "rows.csv")), 1, "nope"),
    ]  # fmt: skip
    for args, status, message in refusals:
        code, _, err = run(*args)
        assert code == status and __import__("re").search(message, " ".join(err.split())), err


def test_versions_show_prints_the_stored_importance(cancer: Path) -> None:
    shown = ok("versions", "show", "cancer@production")
    assert "importance: mean |contribution| to the log-odds of class 1 (tree explainer, 500" in (
        " ".join(shown.split())
    )
    listed = shown.split("reference rows)\n", 1)[1].splitlines()
    with Yard() as yard:
        stored = stored_importance(yard, "cancer")
    assert stored is not None
    assert [line[18:].rsplit(" ", 1)[0].strip() for line in listed] == [
        name for name, _ in stored.ranked()
    ]
    record = json.loads(ok("versions", "show", "cancer", "--json"))
    assert record["importance"]["explainer"] == "tree" and record["number"] == 1
    with Yard() as yard:
        x = np.zeros((3, 40))
        forest = RandomForestRegressor(n_estimators=2).fit(x, np.arange(3.0))
        yard.log_model(forest, name="plain", input_example=x[:2])
        yard.log_model(forest, name="wide", input_example=x[:2], reference_data=x)
    assert "importance" not in ok("versions", "show", "plain")
    assert "importance" not in json.loads(ok("versions", "show", "plain", "--json"))
    assert "… and 30 more" in ok("versions", "show", "wide")


def test_target_leaves_the_label_column_out(cancer: Path) -> None:
    labelled = cancer / "labelled.parquet"
    FRAME[:5].assign(diagnosis=LABELS[:5]).to_parquet(labelled)
    code, _, err = run("cancer", "--input", str(labelled))
    assert code == 1 and "diagnosis" in err  # the label is not one of the model's inputs
    plain = explained("cancer", "--input", str(cancer / "rows.parquet"), "--json")
    assert explained("cancer", "--input", str(labelled), "--target", "diagnosis", "--json") == plain
    code, _, err = run("cancer", "--input", str(labelled), "--target", "diagnosys")
    assert code == 1 and err.startswith(f"error: {labelled} has no column 'diagnosys' to leave")
    assert "did you mean 'diagnosis'?" in err
    np.save(cancer / "rows.npy", FRAME[:2].to_numpy())
    code, _, err = run("cancer", "--input", str(cancer / "rows.npy"), "--target", "diagnosis")
    assert code == 1 and "an .npy file has none" in err
    body = {"inputs": [{"name": "mean radius", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    (cancer / "body.json").write_bytes(orjson.dumps(body))
    code, _, err = run("cancer", "--input", str(cancer / "body.json"), "--target", "diagnosis")
    assert code == 1 and "is a request body" in err
