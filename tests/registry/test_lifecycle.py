from __future__ import annotations

import pytest

from modelyard.errors import ConfigurationError, NotFound
from modelyard.registry import GateFailed, InvalidTransition, Registry, SelfApproval, State


def promote_to_staging(registry: Registry, ref: str) -> None:
    registry.transition(ref, "validated")
    registry.transition(ref, State.STAGING, comment="ready for shadow traffic")


def test_forward_path_and_production_alias(registry: Registry) -> None:
    registry.create_version("fraud")
    promote_to_staging(registry, "fraud:1")
    version = registry.transition("fraud:1", "production")
    assert version.state == State.PRODUCTION
    assert registry.get_model("fraud").aliases == {"production": 1}
    moves = [(t.from_state, t.to_state) for t in registry.transitions("fraud:1")]
    assert moves == [
        (State.REGISTERED, State.VALIDATED),
        (State.VALIDATED, State.STAGING),
        (State.STAGING, State.PRODUCTION),
    ]
    assert registry.transitions("fraud:1")[1].comment == "ready for shadow traffic"


def test_production_without_moving_the_alias(registry: Registry) -> None:
    registry.create_version("fraud")
    promote_to_staging(registry, "fraud:1")
    registry.transition("fraud:1", "production", move_alias=False)
    assert registry.get_model("fraud").aliases == {}


def test_archive_from_anywhere_and_nothing_after(registry: Registry) -> None:
    registry.create_version("fraud")
    assert registry.transition("fraud:1", "archived").state == State.ARCHIVED
    with pytest.raises(InvalidTransition, match="from archived to validated; allowed: none"):
        registry.transition("fraud:1", "validated")


def test_skipping_a_state_lists_the_allowed_moves(registry: Registry) -> None:
    registry.create_version("fraud")
    with pytest.raises(InvalidTransition, match="allowed: validated, archived"):
        registry.transition("fraud:1", "production")


def test_unknown_state(registry: Registry) -> None:
    registry.create_version("fraud")
    with pytest.raises(ConfigurationError, match="unknown state 'live'"):
        registry.transition("fraud:1", "live")


def test_failed_promotion_lists_every_failed_gate(registry: Registry, reviewer: Registry) -> None:
    registry.add_gate("fraud", "metric", metric="auc", op=">=", value=0.9)
    registry.add_gate("fraud", "metric", metric="latency_ms", op="<", value=50)
    registry.add_gate("fraud", "tag", key="reviewed", value="yes")
    registry.add_gate("fraud", "signature")
    registry.add_gate("fraud", "approval", count=1)
    registry.add_gate("fraud", "tag", to_state="staging", key="dataset")
    registry.create_version("fraud", metrics={"auc": 0.85}, tags={"dataset": "d1"})
    promote_to_staging(registry, "fraud:1")
    with pytest.raises(GateFailed) as caught:
        registry.transition("fraud:1", "production")
    assert caught.value.failures == [
        "metric auc = 0.85 (needs >= 0.9)",
        "metric latency_ms is missing (needs < 50)",
        "tag reviewed = 'yes' is required",
        "a signature is required",
        "needs 1 approval(s) by someone other than the creator, has 0",
    ]
    assert registry.get_version("fraud:1").state == State.STAGING


def test_gates_pass(registry: Registry, reviewer: Registry) -> None:
    registry.add_gate("fraud", "metric", metric="auc", op=">=", value=0.9)
    registry.add_gate("fraud", "tag", key="reviewed")
    registry.add_gate("fraud", "signature")
    registry.add_gate("fraud", "approval")
    registry.create_version(
        "fraud", metrics={"auc": 0.93}, tags={"reviewed": "yes"},
        signature={"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]},
    )  # fmt: skip
    promote_to_staging(registry, "fraud:1")
    with pytest.raises(SelfApproval, match="ana created fraud:1 and cannot approve it"):
        registry.approve("fraud:1")
    reviewer.approve("fraud:1", comment="looks good")
    reviewer.approve("fraud:1")  # approving twice counts once
    assert registry.transition("fraud:1", "production").state == State.PRODUCTION


def test_gate_management(registry: Registry) -> None:
    gate = registry.add_gate("fraud", "metric", metric="auc", op=">", value=0.5)
    assert [g.id for g in registry.gates("fraud")] == [gate.id]
    registry.remove_gate("fraud", gate.id)
    assert registry.gates("fraud") == []
    with pytest.raises(NotFound, match="has no gate"):
        registry.remove_gate("fraud", gate.id)


@pytest.mark.parametrize(
    ("kind", "config", "problem"),
    [
        ("metric", {"metric": "auc", "op": "~", "value": 1}, "needs 'metric' and 'op'"),
        ("metric", {"metric": "auc", "op": ">=", "value": "x"}, "numeric 'value'"),
        ("tag", {}, "needs 'key'"),
        ("approval", {"count": 0}, "positive integer"),
        ("vibes", {}, "unknown gate kind 'vibes'"),
    ],
)
def test_bad_gates(registry: Registry, kind: str, config: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        registry.add_gate("fraud", kind, **config)
