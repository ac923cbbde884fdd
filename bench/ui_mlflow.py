"""The MLflow side of `bench/ui.py`, run by the MLflow virtualenv's python (never imported by
modelyard's own environment).

    python bench/ui_mlflow.py populate sqlite:///PATH/mlflow.db --models 1000 --versions 10000

Fills an MLflow 3.x SQLite backend with the same contents as `bench/ui.py` gives ours: `--models`
registered models of one version each, and `big` with `--versions` versions. MLflow's version
page shows no metrics of its own; a version links its run (`run_id`), as `log_model` plus
`register_model` make it, and the run holds the metrics (shown one click away, on the run page)
and the params. MLflow has no lineage, so a version's parent is a tag (`parent`).

The tables are MLflow's own, made by its `SqlAlchemyStore`s (schema and migrations); the rows go
in through its SQLAlchemy models' tables in batches (11,000 API calls would take a quarter of an
hour here), then a few are read back through `MlflowClient` to check MLflow sees them whole.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

BATCH = 2_000


def contents(models: int, versions: int) -> list[dict[str, Any]]:
    """Every version to register, in order: one per listed model, then `big`'s."""
    rows = [
        {"name": f"model-{i:04d}", "version": 1, "description": f"listed model {i}",
         "metrics": {"auc": (i * 7919 % 1000) / 1000, "loss": 1 / (i + 1), "accuracy": 0.9},
         "tags": {"team": ["risk", "growth", "ads"][i % 3], "owner": f"user{i % 7}"},
         "parent": None}
        for i in range(models)
    ]  # fmt: skip
    rows += [
        {"name": "big", "version": v, "description": "",
         "metrics": {"auc": (v * 7919 % 10_000) / 10_000, "loss": 1 / v, "accuracy": 0.8},
         "tags": {"team": ["risk", "growth", "ads"][v % 3], "dataset": f"d{v % 11}"},
         "parent": f"big:{v - 1}" if v > 1 else None}
        for v in range(1, versions + 1)
    ]  # fmt: skip
    return rows


def populate(db_uri: str, models: int, versions: int, artifacts: str) -> dict[str, Any]:
    """Fill `db_uri` (made and migrated by MLflow's stores) and check a version through the API."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    began = time.perf_counter()
    tracking = TrackingStore(db_uri, artifacts)
    RegistryStore(db_uri)
    experiment = tracking.get_experiment_by_name("Default")
    assert experiment is not None
    now = int(time.time() * 1000)
    rows = contents(models, versions)
    with tracking.ManagedSessionMaker() as session:
        for start in range(0, len(rows), BATCH):
            _insert(session, rows[start : start + BATCH], experiment.experiment_id, now)
    client = MlflowClient(tracking_uri=db_uri, registry_uri=db_uri)
    middle = client.get_model_version("big", str(max(1, versions // 2)))
    run = client.get_run(middle.run_id)
    assert len(run.data.metrics) == 3 and len(middle.tags) == 3, (run.data.metrics, middle.tags)
    listed = client.search_registered_models(max_results=5)
    assert listed, "no registered models"
    checked = f"big:{middle.version} run {middle.run_id}"
    return {"mlflow": mlflow.__version__, "seconds": round(time.perf_counter() - began, 1),
            "versions": len(rows), "checked": checked}  # fmt: skip


def _insert(session: Any, rows: list[dict[str, Any]], experiment_id: str, now: int) -> None:
    """One batch of versions: their runs (metrics, params), models, versions and tags."""
    from mlflow.store.model_registry.dbmodels.models import (
        SqlModelVersion,
        SqlModelVersionTag,
        SqlRegisteredModel,
    )
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )

    tables: dict[Any, list[dict[str, Any]]] = {
        table: [] for table in (SqlRun, SqlMetric, SqlLatestMetric, SqlParam, SqlTag,
                                SqlRegisteredModel, SqlModelVersion, SqlModelVersionTag)
    }  # fmt: skip
    for offset, row in enumerate(rows):
        name, version, when = row["name"], row["version"], now + offset
        run = uuid.uuid4().hex
        tables[SqlRun].append({
            "run_uuid": run, "name": f"{name}-{version}", "source_type": "LOCAL",
            "source_name": "bench", "entry_point_name": "", "user_id": "bench",
            "status": "FINISHED", "start_time": when, "end_time": when, "source_version": "",
            "lifecycle_stage": "active", "artifact_uri": f"mlflow-artifacts:/0/{run}/artifacts",
            "experiment_id": int(experiment_id)})  # fmt: skip
        for key, value in row["metrics"].items():
            metric = {"key": key, "value": value, "timestamp": when, "step": 0, "is_nan": False,
                      "run_uuid": run}  # fmt: skip
            tables[SqlMetric].append(metric)
            tables[SqlLatestMetric].append(dict(metric))
        tables[SqlParam].append({"key": "lr", "value": "0.1", "run_uuid": run})
        tables[SqlTag].append({"key": "mlflow.runName", "value": f"{name}-{version}",
                               "run_uuid": run})  # fmt: skip
        if version == 1:
            tables[SqlRegisteredModel].append({"name": name, "creation_time": when,
                                               "last_updated_time": when,
                                               "description": row["description"]})  # fmt: skip
        tables[SqlModelVersion].append({
            "name": name, "version": version, "creation_time": when, "last_updated_time": when,
            "description": row["description"], "user_id": "bench", "current_stage": "None",
            "source": f"runs:/{run}/model", "storage_location": f"mlflow-artifacts:/0/{run}/model",
            "run_id": run, "run_link": "", "status": "READY"})  # fmt: skip
        tags = {**row["tags"], **({"parent": row["parent"]} if row["parent"] else {})}
        for key, value in tags.items():
            tables[SqlModelVersionTag].append({"name": name, "version": version, "key": key,
                                               "value": value})  # fmt: skip
    for table, values in tables.items():
        if values:
            session.execute(table.__table__.insert(), values)
    if rows[-1]["name"] == "big":  # the model's "last updated" is its newest version's time
        session.execute(SqlRegisteredModel.__table__.update()
                        .where(SqlRegisteredModel.__table__.c.name == "big")
                        .values(last_updated_time=now + len(rows)))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fill = commands.add_parser("populate", help="fill an MLflow SQLite backend")
    fill.add_argument("db_uri")
    fill.add_argument("--models", type=int, default=1_000)
    fill.add_argument("--versions", type=int, default=10_000)
    fill.add_argument("--artifacts", default="./mlartifacts")
    commands.add_parser("version", help="print MLflow's version")
    args = parser.parse_args()
    if args.command == "version":
        import mlflow

        print(mlflow.__version__)
        return
    print(json.dumps(populate(args.db_uri, args.models, args.versions, args.artifacts)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
