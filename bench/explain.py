"""Explanation benchmark: modelyard's tree SHAP against calling shap directly with the same
explainer, for gradient-boosted models.

    python bench/explain.py [--rows 10000] [--repeat 5] [--requests 300]
                            [--out bench/results/explain.json]

A few minutes. In a fresh temporary home it trains an XGBoost and a LightGBM classifier (20
features, 20,000 synthetic rows, each library's default trees), logs each with a reference sample,
and measures, against `shap.TreeExplainer(model)` on the same loaded model in the same process:

- batch: explaining `--rows` rows with `explain_version` (explainer cached, as `yard.explain`
  keeps it) against `explainer(X)`; and cold, building included (`explain_version` without a
  cache loads the model from the local cache folder and builds the explainer) against
  `shap.TreeExplainer(model)(X)`;
- one row in-process: `explain_version` of one row against `explainer(X[:1])`;
- one row through the server: `POST /v2/models/NAME/explain` with one row to `modelyard serve`
  in its own process, over one keep-alive connection, against `explainer(X[:1])` here.

Both processes run with `OMP_NUM_THREADS=1` (unless it is set): the models' own thread pools
would otherwise compete with the other process for the cores.

Each figure is the median of `--repeat` runs (batch) or `--requests` calls (one row), ours and
shap's alternating so that a burst of other work slows both. The goal is a ratio of at most 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One thread here as in the server: OpenMP workers that spin while they wait for work take the
# other side's core on a small machine, and the comparison would measure that instead.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from modelyard import Settings, Yard  # noqa: E402
from modelyard.explain import ExplainerCache, explain_version  # noqa: E402
from modelyard.explain._shap import shap_module  # noqa: E402
from tests.servers import serving_process  # noqa: E402

GOAL = 1.2
FEATURES = 20


def train(yard: Yard) -> list[str]:
    """Log both models as NAME@production; return their names."""
    import lightgbm
    import xgboost
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=20_000, n_features=FEATURES, n_informative=12, random_state=0
    )
    models = {
        # Each library's defaults: 100 trees, of depth 6 (XGBoost) or 31 leaves (LightGBM).
        "xgboost": xgboost.XGBClassifier(n_estimators=100, max_depth=6, random_state=0),
        "lightgbm": lightgbm.LGBMClassifier(n_estimators=100, random_state=0, verbose=-1),
    }
    for name, model in models.items():
        model.fit(x, y)
        yard.log_model(model, name=name, input_example=x[:2], reference_data=x[:2_000],
                       alias="production")  # fmt: skip
    return list(models)


def paired(
    repeat: int, ours: Callable[[], object], theirs: Callable[[], object]
) -> tuple[float, float]:
    """Median seconds of each, alternating calls (after one untimed call of each)."""
    ours(), theirs()
    mine, shap = [], []
    for _ in range(repeat):
        for action, times in ((ours, mine), (theirs, shap)):
            began = time.perf_counter()
            action()
            times.append(time.perf_counter() - began)
    return statistics.median(mine), statistics.median(shap)


def in_process(
    yard: Yard, name: str, x: np.ndarray[Any, Any], repeat: int, calls: int
) -> list[dict[str, Any]]:
    shap = shap_module()
    native = yard.load_model(f"{name}@production").native
    explainer = shap.TreeExplainer(native)
    cache = ExplainerCache()
    ref = f"{name}@production"
    rows = []
    warm = paired(repeat, lambda: explain_version(yard, ref, x, cache=cache), lambda: explainer(x))
    rows.append(row(name, f"batch {len(x):,} rows", *warm))
    cold = paired(
        repeat, lambda: explain_version(yard, ref, x), lambda: shap.TreeExplainer(native)(x)
    )
    rows.append(row(name, f"batch {len(x):,} rows, cold", *cold))
    one = paired(
        calls, lambda: explain_version(yard, ref, x[:1], cache=cache), lambda: explainer(x[:1])
    )
    rows.append(row(name, "1 row, in-process", *one))
    return rows


def through_server(home: Path, name: str, x: np.ndarray[Any, Any], calls: int) -> dict[str, Any]:
    import httpx

    shap = shap_module()
    with Yard(Settings(home=home)) as yard:
        explainer = shap.TreeExplainer(yard.load_model(f"{name}@production").native)
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, FEATURES], "datatype": "FP64",
                                   "data": x[0].tolist()}]})  # fmt: skip
    with serving_process(home, f"{name}@production", env={"OMP_NUM_THREADS": "1"}) as url:
        with httpx.Client(base_url=url, timeout=60) as client:

            def request() -> None:
                response = client.post(f"/v2/models/{name}/explain", content=body,
                                       headers={"content-type": "application/json"})  # fmt: skip
                response.raise_for_status()

            for _ in range(5):  # builds the explainer (and imports shap) in the server
                request()
            timed = paired(calls, request, lambda: explainer(x[:1]))
            return row(name, "1 row, through the server", *timed)


def row(model: str, case: str, ours: float, shap: float) -> dict[str, Any]:
    return {"model": model, "case": case, "modelyard_ms": ours * 1e3, "shap_ms": shap * 1e3,
            "ratio": ours / shap}  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | case | modelyard ms | shap ms | ratio |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['case']} | {r['modelyard_ms']:.2f} | "
                     f"{r['shap_ms']:.2f} | {r['ratio']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def goal_line(rows: list[dict[str, Any]], batch: int) -> str:
    verdicts = []
    for case in (f"batch {batch:,} rows", "1 row, through the server"):
        found = next(r for r in rows if r["model"] == "xgboost" and r["case"] == case)
        verdict = "met" if found["ratio"] <= GOAL else "not met"
        verdicts.append(f"{case}: {found['ratio']:.2f}x ({verdict})")
    return f"goal: xgboost, modelyard / shap <= {GOAL}x: " + "; ".join(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/explain.json")
    args = parser.parse_args()
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-explain-") as work:
        home = Path(work) / "home"
        with Yard(Settings(home=home)) as yard:
            names = train(yard)
            x = np.random.default_rng(1).normal(size=(args.rows, FEATURES))
            for name in names:
                rows += in_process(yard, name, x, args.repeat, args.requests)
        for name in names:
            rows.append(through_server(home, name, x, args.requests))
    print(table(rows))
    print()
    print(goal_line(rows, args.rows))
    import shap
    import xgboost

    environment = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "shap": shap.__version__,
        "xgboost": xgboost.__version__,
        "seconds": time.perf_counter() - began,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"environment": environment, "goal": goal_line(rows, args.rows), "rows": rows}, indent=2
        )  # fmt: skip
    )


if __name__ == "__main__":
    main()
