from __future__ import annotations

import pytest

from modelyard.errors import ConfigurationError
from modelyard.registry import Registry, RunNotFound


def test_run_with_params_metrics_and_datasets(registry: Registry) -> None:
    run = registry.create_run(name="lr-sweep", params={"lr": 0.1}, code_revision="abc123")
    assert run.status == "running" and run.created_by == "ana"
    registry.log_params(run.id, {"depth": 6})
    registry.log_datasets(run.id, {"train": "sha256:" + "1" * 64})
    registry.log_metrics(run.id, {"loss": 0.9, "acc": 0.5})
    registry.log_metrics(run.id, {"loss": 0.5})
    registry.log_metrics(run.id, {"loss": 0.3}, step=10)
    finished = registry.end_run(run.id)
    assert finished.status == "finished" and finished.ended_at is not None
    assert finished.params == {"lr": "0.1", "depth": "6"}
    assert finished.datasets == {"train": "sha256:" + "1" * 64}
    assert finished.code_revision == "abc123"
    assert finished.metrics == {"loss": 0.3, "acc": 0.5}
    history = registry.metric_history(run.id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 0.9), (1, 0.5), (10, 0.3)]


def test_versions_link_to_their_run(registry: Registry) -> None:
    run = registry.create_run(name="train")
    version = registry.create_version("fraud", run_id=run.id)
    assert version.run_id == run.id


def test_run_errors(registry: Registry) -> None:
    with pytest.raises(RunNotFound, match="run 'nope' does not exist"):
        registry.get_run("nope")
    run = registry.create_run()
    with pytest.raises(ConfigurationError, match="metric 'loss' must be a number"):
        registry.log_metrics(run.id, {"loss": "low"})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="status 'done' is not one of"):
        registry.end_run(run.id, "done")
    assert registry.end_run(run.id, "failed").status == "failed"
