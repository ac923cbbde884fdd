"""Reads for browsing: audit events newest first with filters, versions by run, metric histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelyard.errors import ConfigurationError
from modelyard.registry import Registry, audit_page, metric_histories, versions_by_run


def populate(registry: Registry, reviewer: Registry) -> None:
    registry.create_version("fraud")
    registry.create_version("fraud", alias="production")
    registry.create_version("fraud_x")  # `_` must not match any one character
    registry.create_version("fraudy")
    reviewer.set_tag("fraud:1", "team", "risk")


def test_events_come_newest_first_and_page_on(registry: Registry, reviewer: Registry) -> None:
    populate(registry, reviewer)
    newest = audit_page(registry.database, limit=3)
    assert [e.seq for e in newest] == [9, 8, 7]
    older = audit_page(registry.database, limit=3, before=newest[-1].seq)
    assert [e.seq for e in older] == [6, 5, 4]
    with pytest.raises(ConfigurationError):
        audit_page(registry.database, limit=0)
    with pytest.raises(ConfigurationError):
        audit_page(registry.database, before=-1)


def test_events_filter_by_target_actor_action_and_time(
    registry: Registry, reviewer: Registry
) -> None:
    populate(registry, reviewer)
    database = registry.database
    about = {e.target for e in audit_page(database, target="fraud")}
    assert about == {"fraud", "fraud:1", "fraud:2", "fraud@production"}
    assert {e.target for e in audit_page(database, target="fraud:1")} == {"fraud:1"}
    assert {e.target for e in audit_page(database, target="fraud_")} == set()
    assert [e.action for e in audit_page(database, actor="ben")] == ["version.tag"]
    assert {e.action for e in audit_page(database, action="alias")} == {"alias.set"}
    assert len(audit_page(database, action="version.create")) == 4
    assert audit_page(database, action="version.creat") == []
    now = datetime.now(UTC)
    assert len(audit_page(database, since=now - timedelta(hours=1))) == 9
    assert audit_page(database, since=now + timedelta(hours=1)) == []
    assert audit_page(database, until=now - timedelta(hours=1)) == []


def test_versions_and_histories_by_run(registry: Registry) -> None:
    run = registry.create_run(name="train")
    other = registry.create_run(name="idle")
    registry.create_version("fraud", run_id=run.id)
    registry.create_version("iris", run_id=run.id)
    registry.create_version("iris")
    assert versions_by_run(registry.database, [run.id, other.id]) == {run.id: ["fraud:1", "iris:1"]}
    assert versions_by_run(registry.database, []) == {}
    registry.log_metrics(run.id, {"loss": 0.5}, step=2)
    registry.log_metrics(run.id, {"loss": 0.9, "auc": 0.7}, step=1)
    registry.log_metrics(run.id, {"loss": 0.4}, step=2)  # logged again: the last value counts
    histories = metric_histories(registry.database, [run.id, other.id])
    assert histories == {run.id: {"auc": [(1, 0.7)], "loss": [(1, 0.9), (2, 0.4)]}}
    assert metric_histories(registry.database, []) == {}
