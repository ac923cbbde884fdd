from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
from sklearn.linear_model import LogisticRegression

from modelyard import Yard
from tests.cli.test_registry import home, ok, run

_ = home  # the autouse fixture: a fresh MODELYARD_HOME per test

RNG = np.random.default_rng(5)
X = RNG.normal(size=(500, 3))


def log_traffic(home: Path, rows: np.ndarray, *, requests: int = 1) -> None:  # type: ignore[type-arg]
    """Log `rows` for churn:1 as `requests` requests (ids `r`, or `r0`, `r1`, ...), just now."""
    folder = home / "predictions" / "churn" / "1"
    folder.mkdir(parents=True)
    now = datetime.now(UTC)
    lines = [
        orjson.dumps({"id": "r" if requests == 1 else f"r{i}", "model": "churn", "version": "1",
                      "time": now.isoformat(), "latency_ms": 1.0,
                      "inputs": {"input-0": part.tolist()},
                      "outputs": {"output-0": (part[:, 0] > 0).tolist()}}) + b"\n"
        for i, part in enumerate(np.array_split(rows, requests))
    ]  # fmt: skip
    (folder / f"{now.date().isoformat()}.jsonl").write_bytes(b"".join(lines))


def test_report_prints_tables_and_json(home: Path) -> None:
    with Yard() as yard:
        model = LogisticRegression().fit(X, X[:, 0] > 0)
        yard.log_model(model, name="churn", input_example=X[:2], reference_data=X)
    shifted = RNG.normal(size=(500, 3)) + [2.0, 0.0, 0.0]
    log_traffic(home, shifted)
    table = ok("monitor", "report", "churn", "--window", "10m")
    assert "churn:1: 1 requests, 500 rows" in table
    # One column in three drifted: below the dataset's 50%, but never called "no drift".
    assert "inputs: 1 of 3 columns drifted (33%), under the 50% that marks" in table
    assert "predictions: DRIFTED: 1 of 1 columns drifted (100%)" in table
    row = next(line for line in table.splitlines() if line.startswith("input-0[0]"))
    assert row.split()[1] == "ks" and row.split()[-1] == "yes"
    report = json.loads(ok("monitor", "report", "churn", "--window", "1h", "--json"))
    assert report["rows"] == 500 and report["inputs"]["share"] > 0.3
    with Yard() as yard:
        yard.log_feedback("churn", "r", (shifted[:, 0] > 0).tolist())
    out = home.parent / "report"
    labelled = ok("monitor", "report", "churn", "--window", "10m", "--out", str(out))
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 3 and "input-0[0]" in page and "<script" not in page
    assert json.loads((out / "report.json").read_text())["rows"] == 500
    assert "performance on 500 labelled rows: accuracy 1, f1_macro 1" in labelled


def test_report_errors(home: Path) -> None:
    code, _, err = run("monitor", "report", "churn", "--window", "soon")
    assert code == 2 and "expected a duration such as 30s" in err
    with Yard() as yard:
        yard.log_model(LogisticRegression().fit(X, X[:, 0] > 0), name="churn")
    code, _, err = run("monitor", "report", "churn")
    assert code == 1 and "has no reference profile" in err
    with Yard() as yard:
        yard.log_model(LogisticRegression().fit(X, X[:, 0] > 0), name="churn", reference_data=X)
    assert "no requests logged in the window" in ok("monitor", "report", "churn", "--window", "2d")
