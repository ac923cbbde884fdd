"""Tuning on a Dask cluster: a LocalCluster of two one-thread worker processes on loopback, its
trials run as tasks against the study in the registry's database, each a run that names its
worker; the CLI's `--scheduler`; and the addresses and installs that cannot work."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelyard import Settings, Yard
from modelyard.errors import ConfigurationError, MissingDependency, ModelyardError
from modelyard.optimize._tune import TrialSummary, TuneTrial, _work, tune
from modelyard.optimize._tune_dask import _share

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",  # loopback only, ephemeral ports
        dashboard_address=None,
        silence_logs=logging.CRITICAL,  # the failing tasks below are expected
    ) as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster, set_as_default=False) as opened:
        yield opened


def quadratic(params: dict[str, Any], trial: TuneTrial) -> float:
    return -float((params["x"] - 0.3) ** 2)


def test_trials_run_on_every_worker_as_runs(yard: Yard, cluster: Any, tmp_path: Path) -> None:
    target = 0.3  # a closure: the objective travels to the workers by value

    def objective(params: dict[str, Any], trial: TuneTrial) -> Any:
        if trial.number == 2:
            raise RuntimeError("trial 2 failed on its worker")
        time.sleep(0.3)  # long enough for both workers to take trials
        model = tmp_path / f"trial-{trial.number}"  # a model folder (no framework to import)
        model.mkdir()
        (model / "x.json").write_text(json.dumps(params["x"]))
        return -((params["x"] - target) ** 2), model

    seen: list[TrialSummary] = []
    result = tune(yard, objective, {"x": ("float", 0.0, 1.0)}, name="dq", n_trials=6, seed=0,
                  scheduler=cluster.scheduler_address, on_trial=seen.append)  # fmt: skip
    assert len(result.trials) == 6 and sorted(t.number for t in seen) == list(range(6))
    workers = {t.worker for t in result.trials}
    assert workers == set(cluster.scheduler_info["workers"])  # both of them, no one else
    for trial in result.trials:
        run = yard.get_run(trial.run_id or "")
        assert run.name == f"dq/{trial.number}" and run.tags["tune.worker"] == trial.worker
        assert run.tags["tune.pid"] == str(trial.pid)
    [failed] = [t for t in result.trials if t.state == "fail"]
    assert failed.error == "RuntimeError: trial 2 failed on its worker"
    assert yard.get_run(failed.run_id or "").params["tune.error"] == failed.error
    assert sum(t.state == "complete" for t in result.trials) == 5
    version = result.version
    assert version is not None and version.ref == "dq:1" and version.run_id == result.best_run_id
    assert version.tags["tune.trial"] == str(result.best_trial)
    stored = json.loads((yard.model_folder(version) / "x.json").read_text())
    assert stored == result.best_params["x"]


def test_a_client_is_used_as_given_and_n_jobs_sets_the_tasks(yard: Yard, client: Any) -> None:
    result = tune(yard, quadratic, {"x": ("float", 0.0, 1.0)}, name="one", n_trials=3,
                  n_jobs=1, scheduler=client)  # fmt: skip
    assert len({t.worker for t in result.trials}) == 1 and result.version is None
    assert client.status == "running"  # the caller's client stays open


def test_a_task_that_fails_is_reported(yard: Yard, client: Any) -> None:
    def opener(settings: Settings) -> Any:
        raise RuntimeError(f"no registry for {settings.user}")

    with pytest.raises(ModelyardError, match=r"tuning tasks on Dask stopped .*task 0: Runtime"):
        tune(yard, quadratic, {"x": [1]}, name="f", n_trials=2, scheduler=client, opener=opener)


def test_a_worker_that_cannot_see_the_database_says_so(yard: Yard, client: Any) -> None:
    gone = {"registry database": Path("/nonexistent/registry.db")}
    future = client.submit(_share, _work, None, 1, None, gone, pure=False)
    with pytest.raises(ConfigurationError, match="cannot see the registry database at /nonex"):
        future.result(timeout=30)


def test_the_cli_runs_a_script_on_the_cluster(
    tmp_path: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.cli._app import app

    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    script = tmp_path / "search.py"
    script.write_text(
        "space = {'x': ('float', 0.0, 1.0)}\n"
        "defaults = {'name': 'cli', 'n_trials': 2}\n\n"
        "def objective(params, trial):\n"
        "    return params['x']\n"
    )
    result = CliRunner().invoke(
        app, ["tune", str(script), "--scheduler", cluster.scheduler_address]
    )
    assert result.exit_code == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["trial", "state", "score", "params", "run", "pid", "worker"]
    assert result.stdout.count("tcp://127.0.0.1:") == 2


def test_postgresql_keeps_the_study_of_every_worker(
    tmp_path: Path, client: Any, fresh_postgres: str
) -> None:
    """The several-machines setup: the workers need the database, not this machine's files
    (the store is a local folder here, so the workers check that they see it)."""
    settings = Settings(home=tmp_path / "home", database_url=fresh_postgres, user="ana")
    with Yard(settings) as yard:
        first = tune(yard, quadratic, {"x": ("float", 0.0, 1.0)}, name="pg", n_trials=4,
                     seed=0, scheduler=client)  # fmt: skip
        again = tune(yard, quadratic, {"x": ("float", 0.0, 1.0)}, name="pg", n_trials=2)
    assert len({t.worker for t in first.trials}) == 2
    assert all(t.state == "complete" for t in first.trials)
    assert [t.worker is None for t in again.trials] == [False] * 4 + [True] * 2  # resumed here


def unused_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("tcp://127.0.0.1:{port}", r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:\d+'"),
        ("127.0.0.1", "cannot reach the Dask scheduler at '127.0.0.1': missing port"),
        ("", "give a distributed.Client or a scheduler address"),
        (8786, "scheduler=8786: give a distributed.Client or a scheduler address"),
    ],
)
def test_a_bad_address_is_refused_at_once(yard: Yard, address: Any, message: str) -> None:
    if isinstance(address, str):
        address = address.format(port=unused_port())
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=message):
        tune(yard, quadratic, {"x": [1]}, name="e", n_trials=1, scheduler=address)
    assert time.monotonic() - started < 5


def test_without_the_dask_extra(yard: Yard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(MissingDependency, match="distributed"):
        tune(yard, quadratic, {"x": [1]}, name="e", n_trials=1, scheduler="tcp://127.0.0.1:8786")
