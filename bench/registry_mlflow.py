"""The MLflow side of `bench/registry.py`, run by the MLflow virtualenv's python (never imported
by modelyard's environment; `registry.py` imports only `version_contents` and the constants).

    python bench/registry_mlflow.py DB_URI --upto 10000 [--metrics-per-version 10] [--repeat 200]

Fills MLflow 3.x's registry at DB_URI (SQLite or PostgreSQL, schema made by MLflow's own
stores) with model `big` up to `--upto` versions, each as MLflow holds what `registry.py`
gives ours: a run with the version's metrics and params (MLflow's versions carry no metrics),
and a version of `big` linked to the run, with the version's tags. Rows go in through MLflow's
SQLAlchemy tables, one transaction per 2,000 versions (the API would take about as long per
version as the `register` row, far too slow for 100,000). Called again with a larger `--upto`,
it adds the missing versions, so one database serves both sizes.

Then it times, through `MlflowClient` on the same database (warm, medians), MLflow's closest
equivalent of each operation of ours and prints one JSON object:

- register: `create_run` + `log_batch` (metrics, params) + `create_model_version` (tags);
- resolve alias: `get_model_version_by_alias`;
- alias move: `set_registered_model_alias`;
- search: MLflow's model-version search has no metric filter, so: `search_runs` by the metric
  (ordered by it) for the candidate runs, then `search_model_versions` by name, tag and
  `run_id IN (...)`, then the top 10 by the metric.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

MODEL = "big"
OTHER = "listed"
"""A second model (`--other-versions` versions): a registry of one model is a degenerate case,
where SQLite's planner scans the one-row models table and loses the index order of a search."""
ALIAS = "production"
THRESHOLD = 0.99
TEAM = "risk"
PAGE = 10
"""The search: versions of `big` with auc >= THRESHOLD and tag team = TEAM, best PAGE by auc."""
BATCH = 2_000
TEAMS = ("risk", "growth", "ads")


def version_contents(index: int, metrics: int) -> dict[str, dict[str, Any]]:
    """The params, metrics and tags of the `index`-th version (from 0), with `metrics` metrics:
    `auc` spread over [0, 1) and `metric_1`... The same on both sides of the benchmark."""
    auc = (index * 7919 % 10_000) / 10_000
    values = {"auc": auc, **{f"metric_{k}": (index + k) % 997 / 997 for k in range(1, metrics)}}
    return {
        "params": {f"param_{k}": str(k) for k in range(10)},
        "metrics": values,
        "tags": {**{f"tag_{k}": f"value_{k % 3}" for k in range(5)}, "team": TEAMS[index % 3]},
    }


def median_ms(repeat: int, action: Callable[[int], object], *, warm: int = 5) -> float:
    """Median milliseconds of `repeat` calls of `action(i)`, after `warm` untimed calls."""
    for i in range(warm):
        action(i)
    times = []
    for i in range(repeat):
        began = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def fill(db_uri: str, upto: dict[str, int], metrics: int, artifacts: str) -> dict[str, Any]:
    """Add versions to each model until it has `upto[model]`; how many were added, and the
    seconds taken."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    began = time.perf_counter()
    tracking = TrackingStore(db_uri, artifacts)
    RegistryStore(db_uri)
    experiment = tracking.get_experiment_by_name("Default")
    if experiment is None:
        raise RuntimeError("MLflow made no Default experiment")
    added = 0
    for model, wanted in upto.items():
        added += _fill_model(tracking, model, wanted, metrics, experiment.experiment_id)
    if db_uri.startswith("postgresql"):  # steady state: autovacuum would have analyzed by now
        with tracking.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")
    return {"added": added, "seconds": round(time.perf_counter() - began, 1)}


def _fill_model(tracking: Any, model: str, upto: int, metrics: int, experiment_id: str) -> int:
    """Add versions of `model` until it has `upto` (creating it); how many were added."""
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion, SqlRegisteredModel
    from sqlalchemy import func, select

    with tracking.ManagedSessionMaker() as session:
        table = SqlModelVersion.__table__
        have = session.execute(
            select(func.count(), func.coalesce(func.max(table.c.version), 0))
            .where(table.c.name == model)
        ).one()  # fmt: skip
        count, last = int(have[0]), int(have[1])
        models = SqlRegisteredModel.__table__
        if session.execute(select(models.c.name).where(models.c.name == model)).first() is None:
            now = int(time.time() * 1000)
            row = {"name": model, "creation_time": now, "last_updated_time": now}
            session.execute(models.insert(), [{**row, "description": ""}])
    added = max(0, upto - count)
    for start in range(0, added, BATCH):
        with tracking.ManagedSessionMaker() as session:
            numbers = range(last + 1 + start, last + 1 + min(added, start + BATCH))
            _insert(session, model, numbers, metrics, experiment_id)
    return added


def _insert(session: Any, model: str, numbers: range, metrics: int, experiment_id: str) -> None:
    """Versions `numbers` of `model` (version n has the contents of index n - 1), with runs."""
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion, SqlModelVersionTag
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun

    tables: dict[Any, list[dict[str, Any]]] = {
        table: [] for table in (SqlRun, SqlMetric, SqlLatestMetric, SqlParam, SqlModelVersion,
                                SqlModelVersionTag)
    }  # fmt: skip
    now = int(time.time() * 1000)
    for number in numbers:
        contents = version_contents(number - 1, metrics)
        run = uuid.uuid4().hex
        tables[SqlRun].append({
            "run_uuid": run, "name": f"{model}-{number}", "source_type": "LOCAL",
            "source_name": "bench", "entry_point_name": "", "user_id": "bench",
            "status": "FINISHED", "start_time": now, "end_time": now, "source_version": "",
            "lifecycle_stage": "active", "artifact_uri": f"mlflow-artifacts:/0/{run}/artifacts",
            "experiment_id": int(experiment_id)})  # fmt: skip
        for key, value in contents["metrics"].items():
            metric = {"key": key, "value": value, "timestamp": now, "step": 0, "is_nan": False,
                      "run_uuid": run}  # fmt: skip
            tables[SqlMetric].append(metric)
            tables[SqlLatestMetric].append(dict(metric))
        for key, value in contents["params"].items():
            tables[SqlParam].append({"key": key, "value": value, "run_uuid": run})
        tables[SqlModelVersion].append({
            "name": model, "version": number, "creation_time": now, "last_updated_time": now,
            "description": "", "user_id": "bench", "current_stage": "None",
            "source": f"runs:/{run}/model", "storage_location": f"mlflow-artifacts:/0/{run}/model",
            "run_id": run, "run_link": "", "status": "READY"})  # fmt: skip
        for key, value in contents["tags"].items():
            tables[SqlModelVersionTag].append(
                {"name": model, "version": number, "key": key, "value": value}
            )
    for table, values in tables.items():
        session.execute(table.__table__.insert(), values)


def measure(db_uri: str, metrics: int, repeat: int, upto: int) -> dict[str, Any]:
    """Median ms of each operation through `MlflowClient`, and the search's match count."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=db_uri, registry_uri=db_uri)
    experiment = client.get_experiment_by_name("Default")
    if experiment is None:
        raise RuntimeError("no Default experiment")
    client.set_registered_model_alias(MODEL, ALIAS, "1")
    parts: dict[str, list[float]] = {"create_run": [], "log_batch": [], "create_model_version": []}

    def register(i: int) -> None:
        from mlflow.entities import Metric, Param

        contents = version_contents(upto + i, metrics)
        began = time.perf_counter()
        run = client.create_run(experiment.experiment_id)
        logged = time.perf_counter()
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in contents["metrics"].items()],
            params=[Param(k, v) for k, v in contents["params"].items()],
        )
        made = time.perf_counter()
        client.create_model_version(
            MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=contents["tags"]
        )
        done = time.perf_counter()
        for part, seconds in zip(parts, (logged - began, made - logged, done - made), strict=True):
            parts[part].append(seconds)

    searched: dict[str, list[float]] = {"search_runs": [], "search_model_versions": []}

    def search(_: int) -> list[Any]:
        began = time.perf_counter()
        runs = client.search_runs(
            [experiment.experiment_id], f"metrics.auc >= {THRESHOLD}",
            max_results=50_000, order_by=["metrics.auc DESC"],
        )  # fmt: skip
        auc = {run.info.run_id: run.data.metrics["auc"] for run in runs}
        middle = time.perf_counter()
        ids = ", ".join(f"'{run_id}'" for run_id in auc) or "''"
        found = client.search_model_versions(
            f"name = '{MODEL}' AND tags.team = '{TEAM}' AND run_id IN ({ids})",
            max_results=200_000,
        )
        searched["search_runs"].append(middle - began)
        searched["search_model_versions"].append(time.perf_counter() - middle)
        return sorted(found, key=lambda v: (-auc[v.run_id], int(v.version)))[:PAGE]

    results = {
        "register": median_ms(repeat, register),
        "resolve alias": median_ms(repeat, lambda i: client.get_model_version_by_alias(
            MODEL, ALIAS)),
        "alias move": median_ms(repeat, lambda i: client.set_registered_model_alias(
            MODEL, ALIAS, str(1 + i % 50))),
        "search": median_ms(max(5, repeat // 10), search),
    }  # fmt: skip
    parts_ms = {part: statistics.median(times) * 1000
                for part, times in {**parts, **searched}.items()}  # fmt: skip
    return {"ms": results, "parts_ms": parts_ms, "search_page": len(search(0))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db_uri")
    parser.add_argument("--upto", type=int, required=True)
    parser.add_argument("--other-versions", type=int, default=1_000)
    parser.add_argument("--metrics-per-version", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--artifacts", default="./mlartifacts")
    args = parser.parse_args()
    import mlflow

    sizes = {OTHER: args.other_versions, MODEL: args.upto}
    filled = fill(args.db_uri, sizes, args.metrics_per_version, args.artifacts)
    measured = measure(args.db_uri, args.metrics_per_version, args.repeat, args.upto)
    print(json.dumps({"mlflow": mlflow.__version__, "populate": filled, **measured}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
