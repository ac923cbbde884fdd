from __future__ import annotations

from modelyard.registry import Registry


def test_lineage_walks_up_and_down_through_merges(registry: Registry) -> None:
    registry.create_version("fraud")  # 1
    registry.create_version("fraud")  # 2, parent 1
    registry.create_version("fraud", parents=["fraud:1"])  # 3, a branch from 1
    registry.create_version("fraud", parents=["fraud:2", "fraud:3"])  # 4, the merge
    registry.create_version("fraud")  # 5, parent 4
    graph = registry.lineage("fraud:3")
    assert graph.root == "fraud:3"
    assert graph.ancestors == ["fraud:1"]
    assert graph.descendants == ["fraud:4", "fraud:5"]
    assert [(e.parent, e.child) for e in graph.edges] == [
        ("fraud:1", "fraud:3"),
        ("fraud:3", "fraud:4"),
        ("fraud:4", "fraud:5"),
    ]
    merge = registry.lineage("fraud:4")
    assert sorted(merge.ancestors) == ["fraud:1", "fraud:2", "fraud:3"]


def test_lineage_across_models(registry: Registry) -> None:
    registry.create_version("teacher")
    registry.create_version("student", parents=["teacher:1"])
    assert registry.lineage("teacher:1").descendants == ["student:1"]
    assert registry.get_version("student:1").parents == ["teacher:1"]
