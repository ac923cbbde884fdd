"""A small registry with something on every page: models with versions, aliases, gates and a
merge; a run with step metrics; served traffic whose inputs drifted and an alert that rolled
production back. Built once per test session (`ui_home` in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def tensors(seed: int, *, changed: int = 0) -> dict[str, np.ndarray]:
    """A tiny two-layer network's weights; `changed` layers nudged (a fine-tune)."""
    rng = np.random.default_rng(0)
    weights = {
        f"layer{i}.{part}": rng.standard_normal((8, 8) if part == "weight" else 8).astype("f4")
        for i in range(3)
        for part in ("weight", "bias")
    }
    nudge = np.random.default_rng(seed)
    for name in sorted(weights)[:changed]:
        weights[name] = weights[name] + nudge.normal(0, 0.01, weights[name].shape).astype("f4")
    return weights


def build(home: Path) -> dict[str, Any]:
    """Fill the registry under `home`; what was made, for tests to look for."""
    from safetensors.numpy import save_file
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from modelyard import Settings, Yard

    yard = Yard(Settings(home=home, user="ana"))
    try:
        X, y = load_breast_cancer(return_X_y=True, as_frame=True)
        with yard.start_run("train-cancer", params={"max_depth": 2}) as run:
            for step in range(20):
                run.log_metrics({"loss": 1.0 / (step + 1), "auc": 0.8 + step / 200}, step=step)
            for depth in (2, 4):
                model = HistGradientBoostingClassifier(max_depth=depth, max_iter=20,
                                                       random_state=0).fit(X, y)  # fmt: skip
                yard.log_model(model, name="cancer", input_example=X[:5],
                               reference_data=X[:200], metrics={"auc": 0.9 + depth / 100},
                               params={"max_depth": depth}, tags={"team": "risk"},
                               alias="champion", run=run.id,
                               description="Breast cancer classifier")  # fmt: skip
        for number in (1, 2):
            for state in ("validated", "staging", "production"):
                yard.transition(f"cancer:{number}", state, comment="ready")
        for variant in range(3):
            folder = home.parent / f"mlp-{variant}"
            folder.mkdir(parents=True, exist_ok=True)
            save_file(tensors(variant, changed=variant * 2), str(folder / "model.safetensors"))
            yard.log_model(folder, name="mlp", metrics={"auc": 0.86 + variant / 100},
                           params={"lr": 10.0 ** -(variant + 2)},
                           tags={"team": "vision"})  # fmt: skip
        yard.merge("mlp:2", "mlp:3", alias="soup")
        yard.registry.add_gate("mlp", "metric", metric="auc", op=">=", value=0.875)
        yard.registry.update_model("mlp", description="A tiny network, fine-tuned three ways")
        made = {"models": ["cancer", "mlp"], "run": run.id}
    finally:
        yard.close()
    add_traffic(home)  # served traffic with drift, feedback, an alert's rollback
    return made


def add_traffic(home: Path) -> dict[str, Any]:
    """Six hours of `cancer:2` traffic, drifted at the end, and the alert that rolled
    `cancer@production` back (tests/ui/traffic_data.py)."""
    from tests.ui.traffic_data import add_traffic as write

    return write(home)
