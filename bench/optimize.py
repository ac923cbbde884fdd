"""Optimization benchmark: every step `yard.optimize` offers, through the registry, beside its
parent: size on disk, p50 latency at batch 1 and 64, and the metric, as ratios.

    python bench/optimize.py [--threads 1] [--out bench/results/optimize.json]

Models: an MLP (64 -> 512 -> 512 -> 512 -> 10, ReLU) trained on scikit-learn's digits, logged so its
class rebuilds it; and a HistGradientBoosting classifier on a synthetic 20-feature task. Each step
runs with `force=True` so that every result is recorded, refused or not; the verdict column says
which the tolerance (1%) would have refused. Latency is timed by the same code the reports use
(parent and child alternating, median of 100 calls at batch 1 and 25 at batch 64), in one thread
unless --threads says otherwise (the serving default: a model runs in one thread per version).

The goal (issue 8): int8 at least 2x smaller and 1.5x faster on CPU with at most a 1% drop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "optimize.json")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import torch

    torch.set_num_threads(args.threads)
    from modelyard import Settings, Yard

    rows: list[dict[str, Any]] = []
    # The torch versions name their class (tests.optimize.models): the bench trusts that module.
    with (
        tempfile.TemporaryDirectory() as home,
        Yard(Settings(home=home, trusted_modules=["tests"])) as yard,
    ):
        digits = digits_mlp(yard)
        for section in sections():
            rows += section(yard, digits)
    print(table(rows))
    print()
    print(goal_line(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"machine": platform.machine(), "python": platform.python_version(),
             "threads": args.threads, "torch": torch.__version__, "rows": rows},
            indent=2,
        ) + "\n"
    )  # fmt: skip
    print(f"\nwrote {args.out}")


Section = Callable[[Any, dict[str, Any]], list[dict[str, Any]]]


def sections() -> list[Section]:
    """Each part of the table, in order; a section gets the yard and `digits_mlp`'s data."""
    from bench import (
        optimize_distill,
        optimize_pruning,
        optimize_pt2e,
        optimize_qat,
        optimize_text,
    )

    return [torch_rows, optimize_pruning.rows, optimize_qat.rows, optimize_pt2e.rows,
            optimize_distill.rows, optimize_text.rows, trees_rows]  # fmt: skip


def digits_mlp(yard: Any) -> dict[str, Any]:
    """The digits split, and the MLP trained on it registered as `mlp:1` (its class rebuilds
    it): the parent of the torch rows."""
    import torch
    from sklearn.datasets import load_digits

    from tests.optimize.models import DigitsMLP, train

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]
    torch.manual_seed(0)  # the layers' initial weights: the same teacher on every run
    mlp = train(DigitsMLP(hidden=512, depth=3), x_train, y_train, epochs=30)
    yard.log_model(mlp, name="mlp", input_example=x_test[:5],
                   options={"export": False, "init": {"hidden": 512, "depth": 3}})  # fmt: skip
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def torch_rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    from tests.optimize.models import train

    x_train, y_train = digits["x_train"], digits["y_train"]
    x_test, y_test = digits["x_test"], digits["y_test"]
    data = {"eval_data": (x_test, y_test), "force": True}

    def finetune(module: Any) -> None:
        train(module, x_train, y_train, epochs=5)

    steps: list[tuple[str, Any]] = [
        ("int8 dynamic (torch)", lambda: yard.optimize.quantize("mlp:1", **data)),
        ("float16 (torch)", lambda: yard.optimize.quantize("mlp:1", dtype="float16", **data)),
        ("prune 30% channels", lambda: yard.optimize.prune(
            "mlp:1", sparsity=0.3, structured=True, **data)),
        ("drop a layer + fine-tune", lambda: yard.optimize.prune(
            "mlp:1", layers=["layers.4", "layers.5"], finetune=finetune, **data)),
        ("to ONNX", lambda: yard.optimize.convert("mlp:1", alias="onnx", **data)),
    ]  # fmt: skip
    rows = [row("MLP (digits)", "mlp:1", label, step) for label, step in steps]
    onnx = yard.get_version("mlp@onnx").ref
    calibration = x_train[:256]
    steps = [
        ("ONNX int8 dynamic", lambda: yard.optimize.quantize(onnx, **data)),
        ("ONNX int8 static", lambda: yard.optimize.quantize(
            onnx, method="static", calibration=calibration, **data)),
        ("ONNX float16", lambda: yard.optimize.quantize(onnx, dtype="float16", **data)),
        ("ONNX graph optimization", lambda: yard.optimize.optimize_graph(onnx, **data)),
    ]  # fmt: skip
    rows += [row("MLP (digits)", onnx, label, step) for label, step in steps]
    return rows


def trees_rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = make_classification(n_samples=20_000, n_features=20, n_informative=12, random_state=0)
    x = x.astype(np.float32)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x[:15_000], y[:15_000])
    yard.log_model(model, name="gbm", input_example=x[:5])
    data = {"eval_data": (x[15_000:], y[15_000:]), "force": True}
    rows = [row("HistGradientBoosting", "gbm:1", "to ONNX",
                 lambda: yard.optimize.convert("gbm:1", alias="onnx", **data))]  # fmt: skip
    onnx = yard.get_version("gbm@onnx").ref
    rows.append(row("HistGradientBoosting", onnx, "ONNX graph optimization",
                     lambda: yard.optimize.optimize_graph(onnx, **data)))  # fmt: skip
    return rows


def row(model: str, parent: str, label: str, step: Any) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result = step()
    except Exception as error:  # a step this model cannot take: recorded, not fatal
        return {"model": model, "parent": parent, "step": label, "error": str(error)[:200]}
    report = result.report
    return {
        "model": model, "parent": parent, "step": label, "version": result.version.ref,
        "seconds": round(time.perf_counter() - start, 2),
        "parent_bytes": report.before.size_bytes, "bytes": report.after.size_bytes,
        "size_ratio": report.size_ratio,
        "parent_p50_b1_ms": report.before.p50_batch1_ms, "p50_b1_ms": report.after.p50_batch1_ms,
        "speedup_b1": report.speedup_batch1,
        "parent_p50_b64_ms": report.before.p50_batch64_ms,
        "p50_b64_ms": report.after.p50_batch64_ms, "speedup_b64": report.speedup_batch64,
        "parent_metric": report.before.metric, "metric": report.after.metric,
        "metric_change": report.metric_change, "accepted": report.accepted,
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | step | from | size | x smaller | p50 b1 ms | x faster b1 | p50 b64 ms "
        "| x faster b64 | accuracy | change | within 1% |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['step']} | {r['parent']} | error: {r['error']} |")
            continue
        lines.append(
            f"| {r['model']} | {r['step']} | {r['parent']} | {r['bytes'] / 1024:,.0f} KiB "
            f"| {r['size_ratio']:.2f} | {r['p50_b1_ms']:.3f} | {r['speedup_b1']:.2f} "
            f"| {r['p50_b64_ms']:.3f} | {r['speedup_b64']:.2f} | {r['metric']:.4f} "
            f"| {r['metric_change']:+.2%} | {'yes' if r['accepted'] else 'no'} |"
        )
    return "\n".join(lines)


def goal_line(rows: list[dict[str, Any]]) -> str:
    parts = []
    for step in ("int8 dynamic (torch)", "ONNX int8 dynamic", "ONNX int8 static"):
        row = next((r for r in rows if r["step"] == step and "error" not in r), None)
        if row is None:
            continue
        met = row["size_ratio"] >= 2 and row["speedup_b64"] >= 1.5 and row["accepted"]
        parts.append(
            f"{step}: {row['size_ratio']:.2f}x smaller, {row['speedup_b64']:.2f}x faster at "
            f"batch 64 ({row['speedup_b1']:.2f}x at batch 1), {row['metric_change']:+.2%} "
            f"accuracy: goal {'met' if met else 'not met'}"
        )
    return "\n".join(parts)


if __name__ == "__main__":
    main()
