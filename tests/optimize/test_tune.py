"""Tuning end to end through the registry: each sampler, resuming, pruned and failed trials,
worker processes, SQLite and PostgreSQL, and the lineage from the base version to the best."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from sqlalchemy import text

from modelyard import Settings, Yard
from modelyard.errors import ConfigurationError, ModelyardError
from modelyard.optimize._tune import TrialResult, TuneTrial, tune
from modelyard.registry import Database
from modelyard.registry._database import VERSION_TABLE
from tests.registry.test_shared_database import make_old_style

SPACE = {
    "alpha": ("float", 1e-5, 1e-1, "log"),
    "epochs": ("int", 2, 4),
    "noise": ("float", 0.0, 0.3),  # data augmentation: gaussian noise on the inputs
    "loss": ["hinge", "log_loss"],
    "seed": 0,  # a constant: recorded, not searched
}


def classifier(digits: Any) -> Any:
    """An objective that trains a linear classifier epoch by epoch on noisy digits."""
    from sklearn.linear_model import SGDClassifier

    x, y, x_val, y_val = (part[:500] for part in digits)

    def objective(params: dict[str, Any], trial: TuneTrial) -> TrialResult:
        rng = np.random.default_rng(params["seed"])
        model = SGDClassifier(alpha=params["alpha"], loss=params["loss"], random_state=0)
        for epoch in range(params["epochs"]):
            noisy = x + rng.normal(0, params["noise"], x.shape).astype(np.float32)
            model.partial_fit(noisy, y, classes=np.arange(10))
            trial.report(model.score(x_val, y_val), step=epoch)
            trial.log_metrics({"train_accuracy": model.score(x, y)}, step=epoch)
        score = float(model.score(x_val, y_val))
        return TrialResult(score, model, input_example=x[:3], metrics={"error": 1 - score})

    return objective


def quadratic(params: dict[str, Any], trial: TuneTrial) -> float:
    return -((params["x"] - 0.3) ** 2)


def test_tpe_registers_the_best_trial_with_lineage(yard: Yard, digits: Any) -> None:
    from sklearn.dummy import DummyClassifier

    x, y, _, _ = digits
    base = yard.log_model(DummyClassifier().fit(x, y), name="digits", alias="base")
    result = tune(yard, classifier(digits), SPACE, name="digits", n_trials=4, seed=1,
                  parent="digits@base", alias="tuned", metric="accuracy")  # fmt: skip
    assert result.study == "digits" and len(result.trials) == 4
    assert all(t.state == "complete" for t in result.trials)
    assert result.best_value == max(t.value or 0 for t in result.trials)
    version = result.version
    assert version is not None and version.ref == "digits:2"
    assert yard.get_version("digits@tuned") == version
    assert [(e.parent, e.child, e.relation) for e in yard.lineage(version.ref).edges] == [
        (base.ref, "digits:2", "tune")
    ]
    assert version.run_id == result.best_run_id
    assert version.tags == {"tune.study": "digits", "tune.trial": str(result.best_trial),
                            "tune.sampler": "tpe"}  # fmt: skip
    assert version.metrics["accuracy"] == result.best_value
    assert version.metrics["error"] == pytest.approx(1 - (result.best_value or 0))
    assert version.params["alpha"] == str(result.best_params["alpha"])
    assert version.params["seed"] == "0" and version.signature is not None
    run = yard.get_run(version.run_id or "")
    assert run.name == f"digits/{result.best_trial}" and run.status == "finished"
    assert run.tags["tune.study"] == "digits" and run.tags["tune.pid"] == str(os.getpid())
    assert "model" in run.artifacts
    epochs = int(result.best_params["epochs"])
    steps = yard.metric_history(run.id, "accuracy")
    assert [p.step for p in steps] == [*range(epochs), epochs]  # each epoch, then the final
    assert len(yard.metric_history(run.id, "train_accuracy")) == epochs
    _, _, x_val, y_val = digits
    predicted = yard.load_model("digits@tuned", trust=True).predict(x_val[:500])
    assert (np.asarray(predicted) == y_val[:500]).mean() == pytest.approx(result.best_value)


@pytest.mark.parametrize("sampler", ["random", "cmaes"])
def test_other_samplers_are_seeded(yard: Yard, sampler: str) -> None:
    space = {"x": ("float", -1.0, 1.0), "n": ("int", 1, 64, "log"), "k": ("int", 0, 10, 2)}
    first = tune(yard, quadratic, space, name="q", study_name="a", n_trials=3, sampler=sampler,
                 seed=7, direction="maximize")  # fmt: skip
    again = tune(yard, quadratic, space, name="q", study_name="b", n_trials=3, sampler=sampler,
                 seed=7)  # fmt: skip
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert all(t.params["k"] % 2 == 0 for t in first.trials)
    assert first.version is None  # the objective returned no model: nothing to register
    assert yard.get_run(first.best_run_id or "").metrics["score"] == first.best_value


def test_a_rerun_resumes_the_study(yard: Yard) -> None:
    space = {"x": ("float", 0.0, 1.0, 0.25)}

    def objective(params: dict[str, Any], trial: TuneTrial) -> tuple[float, Any]:
        from sklearn.dummy import DummyRegressor

        return quadratic(params, trial), DummyRegressor().fit([[0.0]], [params["x"]])

    first = tune(yard, objective, space, name="q", n_trials=3, seed=0)
    second = tune(yard, objective, space, name="q", n_trials=3, seed=1)
    assert [t.number for t in second.trials] == list(range(6))
    runs = {t.run_id for t in second.trials}
    assert len(runs) == 6 and all(yard.get_run(r or "").status == "finished" for r in runs)
    assert second.version is not None and second.version.run_id == second.best_run_id
    if second.best_run_id == first.best_run_id:  # the same best: its version, not a copy
        assert second.version == first.version
    assert len(yard.list_versions("q")) == len({first.best_run_id, second.best_run_id})


def test_pruned_and_failed_trials_are_recorded(yard: Yard) -> None:
    def objective(params: dict[str, Any], trial: TuneTrial) -> float:
        if params["x"] == "bad":
            raise ValueError("no such setting")
        trial.report(params["x"], step=0)
        if trial.should_prune():
            raise optuna.TrialPruned()
        return float(params["x"])

    space = {"x": ["bad", 0.2, 0.9]}
    result = tune(yard, objective, space, name="p", n_trials=9, sampler="random", seed=3,
                  pruner=optuna.pruners.ThresholdPruner(lower=0.5))  # fmt: skip
    states = {t.params["x"]: t.state for t in result.trials}
    assert states == {"bad": "fail", 0.2: "pruned", 0.9: "complete"}
    for trial in result.trials:
        run = yard.get_run(trial.run_id or "")
        expected = {"fail": "failed", "pruned": "pruned", "complete": "finished"}[trial.state]
        assert run.status == expected
        if trial.state == "fail":
            assert trial.error == run.params["tune.error"] == "ValueError: no such setting"
        if trial.state == "pruned":
            assert [p.value for p in yard.metric_history(run.id, "score")] == [0.2]
    assert result.best_value == 0.9


def test_every_trial_failing_registers_nothing(yard: Yard) -> None:
    def broken(params: dict[str, Any], trial: TuneTrial) -> Any:
        return {"nan": math.nan, "text": "high"}[params["kind"]]

    result = tune(yard, broken, lambda trial: {"kind": trial.suggest_categorical(
        "kind", ["nan", "text"])}, name="b", n_trials=4, pruner="none")  # fmt: skip
    assert result.best_value is None and result.version is None and result.best_params == {}
    errors = {t.error for t in result.trials}
    assert errors <= {"ConfigurationError: the objective returned NaN",
                      "ConfigurationError: the objective returned 'high'; return a number, "
                      "(value, model) or TrialResult(value, model, …)"}  # fmt: skip
    bad_space = tune(yard, quadratic, lambda trial: [1], name="b", study_name="s", n_trials=1)
    assert bad_space.trials[0].error == (
        "ConfigurationError: the space function returned [1], not a dict of params"
    )


def test_a_conditional_space_and_a_timeout(yard: Yard) -> None:
    def space(trial: optuna.Trial) -> dict[str, Any]:
        kind = trial.suggest_categorical("kind", ["linear", "tree"])
        if kind == "tree":
            return {"kind": kind, "depth": trial.suggest_int("depth", 1, 4)}
        return {"kind": kind, "x": trial.suggest_float("x", 0, 1)}

    def objective(params: dict[str, Any], trial: TuneTrial) -> float:
        time.sleep(0.05)
        return params.get("depth", 0) + params.get("x", 0)

    result = tune(yard, objective, space, name="c", timeout=0.5, pruner="hyperband")
    assert len(result.trials) >= 1
    for trial in result.trials:
        assert set(trial.params) in ({"kind", "depth"}, {"kind", "x"})


def test_worker_processes_share_one_study(yard: Yard) -> None:
    parent = os.getpid()

    def objective(params: dict[str, Any], trial: TuneTrial) -> float:
        if trial.number == 2:
            raise RuntimeError("worker trial failed")
        time.sleep(0.2)  # long enough for both workers to take trials
        return quadratic(params, trial)

    result = tune(yard, objective, {"x": ("float", 0.0, 1.0)}, name="w", n_trials=6, n_jobs=2,
                  seed=0, sampler="random")  # fmt: skip
    assert len(result.trials) == 6
    pids = {t.pid for t in result.trials}
    assert len(pids) == 2 and parent not in pids
    for trial in result.trials:
        assert yard.get_run(trial.run_id or "").tags["tune.pid"] == str(trial.pid)
    failed = [t for t in result.trials if t.state == "fail"]
    assert [t.error for t in failed] == ["RuntimeError: worker trial failed"]
    assert sum(t.state == "complete" for t in result.trials) == 5


def test_an_interrupted_trial_ends_its_run_as_killed(yard: Yard) -> None:
    def objective(params: dict[str, Any], trial: TuneTrial) -> float:
        if trial.number == 1:
            raise KeyboardInterrupt
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        tune(yard, objective, {"x": [1]}, name="k", n_trials=3)
    result = tune(yard, quadratic, {"x": [1]}, name="k", n_trials=1)  # resumes
    states = [(t.state, yard.get_run(t.run_id or "").status) for t in result.trials]
    assert states == [("complete", "finished"), ("fail", "killed"), ("complete", "finished")]


def test_a_worker_that_dies_is_reported(yard: Yard) -> None:
    def objective(params: dict[str, Any], trial: TuneTrial) -> float:
        if trial.number == 1:
            raise SystemExit(3)  # the worker process ends; the other goes on
        time.sleep(0.2)
        return 1.0

    with pytest.raises(ModelyardError, match=r"tuning workers stopped .*\(exit code 3\)"):
        tune(yard, objective, {"x": [1]}, name="k", n_trials=4, n_jobs=2)
    trials = {t.number: t for t in tune(yard, quadratic, {"x": [1]}, name="k", n_trials=1).trials}
    assert yard.get_run(trials[1].run_id or "").status == "killed"
    assert trials[1].state == "running"  # Optuna's trial stays as the dead process left it
    assert [t.state for n, t in trials.items() if n != 1] == ["complete"] * (len(trials) - 1)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "space must be a non-empty dict"),
        ({"x": ("float", 0, 1, "cube")}, r"space entry 'x': \('float', 0, 1, 'cube'\) does not"),
        ({"x": ("float", 1, 0)}, "space entry 'x'.*low"),
        ({"x": ("float", 0, 1, "log")}, "space entry 'x'.*log"),
        ({"n": ("int", 0.5, 3)}, "space entry 'n'.*whole numbers"),
        ({"n": ("int", 1)}, "space entry 'n'.*does not parse"),
        ({"c": []}, "space entry 'c': \\[\\] is not a spec"),
        ({"c": [object]}, "space entry 'c'.*is not a spec"),
    ],
)
def test_a_bad_space_names_the_entry(yard: Yard, space: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        tune(yard, quadratic, space, name="e", n_trials=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sampler": "grid"}, "sampler 'grid' is not one of tpe, random, cmaes"),
        ({"direction": "up"}, "direction 'up' is not maximize or minimize"),
        ({"n_trials": None}, "give n_trials or a timeout"),
        ({"n_trials": 0}, "n_trials must be at least 1"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"n_jobs": 0}, "n_jobs must be at least 1"),
        ({"pruner": "early"}, "pruner 'early' is not one of median, hyperband, none"),
    ],
)
def test_bad_options_are_refused(yard: Yard, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        tune(yard, quadratic, {"x": [1]}, name="e", **{"n_trials": 1, **options})


def test_a_study_keeps_its_direction(yard: Yard) -> None:
    tune(yard, quadratic, {"x": [1]}, name="d", n_trials=1)
    with pytest.raises(ConfigurationError, match="study 'd' exists and has direction maximize"):
        tune(yard, quadratic, {"x": [1]}, name="d", n_trials=1, direction="minimize")


def test_a_remote_client_cannot_tune(tmp_path: Path) -> None:
    remote = Yard(Settings(home=tmp_path), url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="client of http://127.0.0.1:9 cannot reach"):
        tune(remote, quadratic, {"x": [1]}, name="r", n_trials=1)


def test_postgresql_shares_the_study_across_processes(tmp_path: Path, fresh_postgres: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=fresh_postgres, user="ana")
    with Yard(settings) as yard:
        result = tune(yard, quadratic, {"x": ("float", 0.0, 1.0)}, name="pg", n_trials=4,
                      n_jobs=2, seed=0)  # fmt: skip
        assert len({t.pid for t in result.trials}) == 2
        assert all(t.state == "complete" for t in result.trials)
    database = Database(fresh_postgres)
    database.open()
    try:
        with database.read() as connection:  # the study's tables sit beside the registry's
            count = connection.execute(text("SELECT count(*) FROM trials")).scalar()
            ours = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    finally:
        database.close()
    assert count == 4 and ours == "0007_tag_statistics"


def test_an_old_style_postgresql_database_needs_an_upgrade(
    tmp_path: Path, fresh_postgres: str
) -> None:
    database = Database(fresh_postgres)
    database.open()
    make_old_style(database)  # its revision where Optuna keeps its own
    settings = Settings(home=tmp_path / "home", database_url=fresh_postgres, user="ana")
    try:
        with Yard(settings) as yard:
            yard.registry.create_run(name="still works")
            with pytest.raises(ConfigurationError, match="run `modelyard db upgrade` once"):
                tune(yard, quadratic, {"x": [1]}, name="old", n_trials=1)
            assert database.migrate() == []
            result = tune(yard, quadratic, {"x": [1]}, name="old", n_trials=1)
            assert result.best_value == pytest.approx(-0.49)
    finally:
        database.close()
