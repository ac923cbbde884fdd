"""The Python client end to end on the embedded default: SQLite and a local folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard import Settings, Yard
from modelyard.errors import ConfigurationError, RegistryUnavailable
from modelyard.registry import Database, State
from tests.conftest import YardFactory


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 100)
    (folder / "config.json").write_text('{"depth": 6}')
    return folder


def test_log_promote_download(yard: Yard, model_dir: Path, tmp_path: Path) -> None:
    first = yard.log_model(model_dir, name="fraud", params={"depth": 6}, metrics={"auc": 0.9})
    (model_dir / "config.json").write_text('{"depth": 8}')
    second = yard.log_model(model_dir, name="fraud", params={"depth": 8}, metrics={"auc": 0.94})
    assert (first.number, second.number) == (1, 2)
    assert second.parents == ["fraud:1"]
    for state in ("validated", "staging", "production"):
        yard.transition("fraud:2", state)
    assert yard.get_version("fraud@production").number == 2
    assert yard.get_model("fraud").aliases == {"production": 2}
    yard.download("fraud@production", tmp_path / "out")
    assert (tmp_path / "out" / "config.json").read_text() == '{"depth": 8}'
    diff = yard.diff("fraud:1", "fraud:2")
    assert [c.key for c in diff.params] == ["depth"]
    assert [f.path for f in diff.files_changed] == ["config.json"]
    assert yard.verify_audit().ok
    yard.close()


def test_log_a_single_file(yard: Yard, model_dir: Path, tmp_path: Path) -> None:
    version = yard.log_model(model_dir / "weights.bin", name="fraud")
    yard.download(version.ref, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["weights.bin"]


def test_log_something_that_is_not_a_path(yard: Yard) -> None:
    with pytest.raises(ConfigurationError, match="pass a folder or a file"):
        yard.log_model("no/such/place", name="fraud")


def test_download_without_files(yard: Yard, tmp_path: Path) -> None:
    yard.registry.create_version("fraud")
    with pytest.raises(ConfigurationError, match="fraud:1 has no stored files"):
        yard.download("fraud:1", tmp_path / "out")


def test_run_context_logs_and_finishes(yard: Yard, model_dir: Path) -> None:
    with yard.start_run(
        "train", params={"lr": 0.1}, datasets={"train": "sha256:" + "2" * 64}
    ) as run:
        run.log_param("depth", 6)
        run.log_params({"seed": 1})
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            run.log_metric("loss", loss, step=step)
        run.log_metrics({"auc": 0.9, "f1": 0.8})
        run.log_dataset("eval", "sha256:" + "3" * 64)
        artifact = run.log_artifact(model_dir / "config.json")
        version = yard.log_model(model_dir, name="fraud", run=run.run)
        assert run.run.status == "running"
    finished = yard.get_run(run.id)
    assert finished.status == "finished"
    assert finished.params == {"lr": "0.1", "depth": "6", "seed": "1"}
    assert finished.metrics == {"loss": 0.3, "auc": 0.9, "f1": 0.8}
    assert finished.artifacts == {"config.json": artifact}
    assert set(finished.datasets) == {"train", "eval"}
    assert [p.value for p in yard.metric_history(run.id, "loss")] == [0.9, 0.5, 0.3]
    assert version.run_id == run.id


def test_failed_run_is_marked_failed(yard: Yard) -> None:
    with pytest.raises(RuntimeError, match="diverged"), yard.start_run("train") as run:
        raise RuntimeError("diverged")
    assert yard.get_run(run.id).status == "failed"


def test_every_registry_operation_is_reachable(
    yard: Yard, make_yard: YardFactory, model_dir: Path
) -> None:
    with make_yard() as other:  # a second client on the same registry
        assert other.list_models() == []
    yard.log_model(model_dir, name="fraud", tags={"team": "risk"}, alias="champion")
    yard.log_model(model_dir, name="fraud", alias="champion")
    assert [m.name for m in yard.list_models()] == ["fraud"]
    assert [v.number for v in yard.list_versions("fraud")] == [2, 1]
    assert [v.ref for v in yard.search_versions("tags.team = 'risk'").versions] == ["fraud:1"]
    yard.set_alias("fraud", "production", "fraud:1")
    assert yard.set_alias("fraud", "exp/lr-sweep", "fraud@champion").number == 2
    assert yard.get_version("fraud@exp/lr-sweep").number == 2
    yard.delete_alias("fraud", "exp/lr-sweep")
    assert yard.rollback("fraud", "champion").number == 1
    assert [e.version for e in yard.alias_history("fraud", "champion")] == [1, 2, 1]
    yard.delete_alias("fraud", "production")
    gate = yard.add_gate("fraud", "approval", to_state="validated")
    assert yard.gates("fraud") == [gate]
    make_yard("ben").approve("fraud:2", comment="ok")
    assert yard.transition("fraud:2", State.VALIDATED).state == State.VALIDATED
    assert [t.to_state for t in yard.transitions("fraud:2")] == [State.VALIDATED]
    assert yard.set_tag("fraud:2", "reviewed", "yes").tags["reviewed"] == "yes"
    assert "reviewed" not in yard.delete_tag("fraud:2", "reviewed").tags
    assert yard.lineage("fraud:1").descendants == ["fraud:2"]
    yard.delete_alias("fraud", "champion")
    yard.delete_version("fraud:2")
    assert yard.audit_log(target="fraud", limit=3)[0].action == "model.create"
    yard.delete_model("fraud")
    assert yard.list_models() == []


def test_local_client_on_a_server_database_needs_migrations(
    tmp_path: Path, database_url: str
) -> None:
    # A fresh PostgreSQL database: the client refuses rather than migrating a shared server.
    name = f"fresh_{tmp_path.name[-8:].replace('-', '_')}"
    admin = Database(database_url)
    admin.open()
    from sqlalchemy import text

    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{database_url.rpartition('/')[0]}/{name}"
    try:
        yard = Yard(Settings(home=tmp_path, database_url=url))
        with pytest.raises(RegistryUnavailable, match="modelyard db upgrade"):
            yard.get_model("fraud")
        database = Database(url)
        database.open()
        assert database.migrate() == [
            "0001_initial",
            "0002_principals",
            "0003_idempotency",
            "0004_webhooks",
            "0005_prediction_log",
            "0006_leases",
            "0007_tag_statistics",
        ]
        database.close()
        yard.registry.create_version("fraud")
        assert yard.get_model("fraud").latest_version == 1
        yard.close()
    finally:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.close()
