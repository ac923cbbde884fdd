from __future__ import annotations

import pytest

from modelyard.errors import InvalidReference, NotFound
from modelyard.registry import AliasNotFound, Registry


def test_set_move_and_history(registry: Registry) -> None:
    for _ in range(3):
        registry.create_version("fraud")
    registry.set_alias("fraud", "production", "fraud:1")
    registry.set_alias("fraud", "production", "fraud:2", reason="better auc")
    assert registry.get_model("fraud").aliases == {"production": 2}
    history = registry.alias_history("fraud", "production")
    assert [(e.version, e.previous) for e in history] == [(2, 1), (1, None)]
    assert history[0].reason == "better auc" and history[0].actor == "ana"


def test_alias_must_name_a_version_of_the_model(registry: Registry) -> None:
    registry.create_version("fraud")
    registry.create_version("iris")
    with pytest.raises(InvalidReference, match="a version of model 'fraud'"):
        registry.set_alias("fraud", "production", "iris:1")


@pytest.mark.parametrize("alias", ["", "12", "has space", "-x"])
def test_bad_alias_names(registry: Registry, alias: str) -> None:
    registry.create_version("fraud")
    with pytest.raises(InvalidReference, match="an alias of letters"):
        registry.set_alias("fraud", alias, "fraud:1")


def test_delete_alias(registry: Registry) -> None:
    registry.create_version("fraud", alias="champion")
    registry.delete_alias("fraud", "champion")
    assert registry.get_model("fraud").aliases == {}
    with pytest.raises(AliasNotFound, match="no alias 'champion'"):
        registry.delete_alias("fraud", "champion")
    assert registry.alias_history("fraud")[0].version is None


def test_rollback_walks_back_one_step_at_a_time(registry: Registry) -> None:
    for _ in range(3):
        registry.create_version("fraud", alias="production")
    assert registry.rollback("fraud").number == 2
    assert registry.rollback("fraud", reason="still bad").number == 1
    with pytest.raises(NotFound, match="no earlier version to roll back to"):
        registry.rollback("fraud")
    events = registry.alias_history("fraud", "production")
    assert events[0].reason == "still bad"
    assert [e.action for e in registry.audit_log(target="fraud@production")].count(
        "alias.rollback"
    ) == 2


def test_rollback_after_a_new_deploy(registry: Registry) -> None:
    for _ in range(3):
        registry.create_version("fraud", alias="production")
    registry.rollback("fraud")  # 3 -> 2
    registry.create_version("fraud", alias="production")  # 4
    assert registry.rollback("fraud").number == 2


def test_rollback_skips_deleted_versions(registry: Registry) -> None:
    registry.create_version("fraud", alias="production")
    registry.create_version("fraud", alias="production")
    registry.create_version("fraud", alias="production")
    registry.set_alias("fraud", "other", "fraud:3")
    registry.set_alias("fraud", "production", "fraud:1")
    registry.delete_alias("fraud", "other")
    registry.set_alias("fraud", "production", "fraud:3")
    registry.set_alias("fraud", "production", "fraud:1")
    # history of production: 1, 2, 3, 1, 3, 1; version 3 is deleted below
    registry.set_alias("fraud", "production", "fraud:2")
    registry.delete_alias("fraud", "production")
    registry.delete_version("fraud:3")
    registry.set_alias("fraud", "production", "fraud:1")
    registry.set_alias("fraud", "production", "fraud:2")
    assert registry.rollback("fraud").number == 1
