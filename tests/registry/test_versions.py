from __future__ import annotations

import pytest

from modelyard.errors import ConfigurationError, InvalidReference
from modelyard.registry import (
    ModelNotFound,
    Registry,
    State,
    VersionInUse,
    VersionNotFound,
)


def test_first_version_creates_the_model(registry: Registry) -> None:
    version = registry.create_version(
        "fraud", params={"lr": 0.1, "depth": 6}, metrics={"auc": 0.91}, tags={"team": "risk"},
        description="baseline", manifest_digest="sha256:" + "a" * 64, flavor="sklearn",
    )  # fmt: skip
    assert version.ref == "fraud:1"
    assert version.params == {"lr": "0.1", "depth": "6"}
    assert version.metrics == {"auc": 0.91}
    assert version.tags == {"team": "risk"}
    assert version.state == State.REGISTERED
    assert version.created_by == "ana"
    assert version.created_at.tzinfo is not None
    model = registry.get_model("fraud")
    assert model.latest_version == 1 and model.owner == "ana"
    assert [m.name for m in registry.list_models()] == ["fraud"]


def test_numbers_count_up_and_parents_follow_the_line(registry: Registry) -> None:
    first = registry.create_version("fraud")
    second = registry.create_version("fraud")
    third = registry.create_version("fraud", parents=["fraud:1"])
    assert (first.number, second.number, third.number) == (1, 2, 3)
    assert first.parents == []
    assert second.parents == ["fraud:1"]
    assert third.parents == ["fraud:1"]
    merged = registry.create_version("fraud", parents=["fraud:2", "fraud:3"])
    assert merged.parents == ["fraud:2", "fraud:3"]


def test_committing_on_an_alias_makes_its_target_the_parent(registry: Registry) -> None:
    registry.create_version("fraud", alias="exp/lr-sweep")
    registry.create_version("fraud")  # main line moves on
    on_branch = registry.create_version("fraud", alias="exp/lr-sweep")
    assert on_branch.parents == ["fraud:1"]
    assert registry.get_version("fraud@exp/lr-sweep").number == 3


@pytest.mark.parametrize("ref", ["fraud", "fraud:2", "fraud@production", "fraud@production~1"])
def test_references(registry: Registry, ref: str) -> None:
    registry.create_version("fraud", alias="production")
    registry.create_version("fraud", alias="production")
    expected = {"fraud": 2, "fraud:2": 2, "fraud@production": 2, "fraud@production~1": 1}
    assert registry.get_version(ref).number == expected[ref]


@pytest.mark.parametrize("ref", ["", "fraud:0", "fraud:x", "fraud@", "a b", "fraud:1@x", "@x"])
def test_bad_references_list_the_accepted_forms(registry: Registry, ref: str) -> None:
    with pytest.raises(InvalidReference, match="NAME:VERSION, NAME@ALIAS"):
        registry.get_version(ref)


def test_missing_things_are_not_found(registry: Registry) -> None:
    with pytest.raises(ModelNotFound, match="'nope' does not exist"):
        registry.get_version("nope:1")
    registry.create_version("fraud")
    with pytest.raises(VersionNotFound, match="fraud:9 does not exist"):
        registry.get_version("fraud:9")
    with pytest.raises(VersionNotFound, match="no alias 'production'"):
        registry.get_version("fraud@production")
    with pytest.raises(VersionNotFound, match="fewer than 3 earlier targets"):
        registry.get_version("fraud@production~3")


def test_invalid_names_and_metrics(registry: Registry) -> None:
    with pytest.raises(InvalidReference, match="model name"):
        registry.create_version("bad name")
    with pytest.raises(ConfigurationError, match="metric 'auc' must be a number"):
        registry.create_version("fraud", metrics={"auc": "high"})  # type: ignore[dict-item]


def test_list_versions_newest_first(registry: Registry) -> None:
    for _ in range(3):
        registry.create_version("fraud")
    assert [v.number for v in registry.list_versions("fraud")] == [3, 2, 1]


def test_tags_can_be_set_and_removed(registry: Registry) -> None:
    registry.create_version("fraud", tags={"team": "risk"})
    assert registry.set_tag("fraud:1", "reviewed", True).tags == {
        "team": "risk",
        "reviewed": "True",
    }
    assert registry.delete_tag("fraud:1", "team").tags == {"reviewed": "True"}
    with pytest.raises(InvalidReference, match="non-empty tag key"):
        registry.set_tag("fraud:1", "", "x")


def test_model_text_that_a_database_cannot_store_is_refused(registry: Registry) -> None:
    registry.create_version("fraud")
    longest = "k" * 255
    assert (
        registry.update_model("fraud", tags={longest: "é" * 65_536}).tags[longest] == "é" * 65_536
    )
    with pytest.raises(ConfigurationError, match="may not contain NUL"):
        registry.update_model("fraud", tags={"k": "a\x00"})
    with pytest.raises(InvalidReference, match="no NUL"):
        registry.update_model("fraud", tags={"a\ud800": "v"})
    assert registry.get_model("fraud").tags == {longest: "é" * 65_536}


def test_delete_version_only_when_unaliased(registry: Registry) -> None:
    registry.create_version("fraud", alias="production")
    registry.create_version("fraud")
    with pytest.raises(VersionInUse, match="alias\\(es\\) production"):
        registry.delete_version("fraud:1")
    registry.delete_version("fraud:2")
    assert [v.number for v in registry.list_versions("fraud")] == [1]
    assert registry.create_version("fraud").number == 3  # numbers are never reused


def test_delete_model(registry: Registry) -> None:
    registry.create_version("fraud", alias="production")
    registry.delete_model("fraud")
    with pytest.raises(ModelNotFound):
        registry.get_model("fraud")
    assert registry.audit_log(target="fraud")[-1].action == "model.delete"


def test_parents_keep_their_order_in_every_read(registry: Registry) -> None:
    for name in ("b", "a"):
        registry.create_version(name)
    # Twelve parents, so a position compared as text ("10" < "2") would show.
    refs = ["b:1", "a:1", *(f"fraud:{n}" for n in range(10, 0, -1))]
    for _ in range(10):
        registry.create_version("fraud", parents=[])
    merged = registry.create_version("fraud", parents=refs)
    assert merged.parents == refs
    assert registry.get_version(merged.ref).parents == refs
    assert registry.list_versions("fraud")[0].parents == refs
    found = registry.search_versions("name = 'fraud'", order_by="version desc", limit=1)
    assert found.versions[0].parents == refs
    assert registry.set_alias("fraud", "merged", merged.ref).parents == refs


def test_latest_of_a_model_without_versions_is_not_found(registry: Registry) -> None:
    registry.create_version("fraud")
    registry.delete_version("fraud:1")
    with pytest.raises(VersionNotFound, match="version fraud does not exist"):
        registry.get_version("fraud")
    assert registry.create_version("fraud").parents == []  # numbers are never reused
    assert registry.get_version("fraud").ref == "fraud:2"


def test_an_alias_can_be_set_from_another(registry: Registry) -> None:
    registry.create_version("fraud")
    registry.create_version("fraud")
    registry.set_alias("fraud", "production", "fraud:1")
    assert registry.set_alias("fraud", "champion", "fraud@production").ref == "fraud:1"
    assert registry.set_alias("fraud", "latest", "fraud").ref == "fraud:2"
