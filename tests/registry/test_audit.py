from __future__ import annotations

from sqlalchemy import update

from modelyard.registry import Database, Registry
from modelyard.registry._tables import audit_events


def populate(registry: Registry) -> None:
    registry.create_version("fraud", metrics={"auc": 0.9})
    registry.create_version("fraud", alias="production")
    registry.set_tag("fraud:1", "team", "risk")
    registry.set_alias("fraud", "production", "fraud:1")


def test_every_change_is_recorded_with_actor_and_before_after(registry: Registry) -> None:
    populate(registry)
    events = registry.audit_log()
    assert [e.action for e in events] == [
        "model.create",
        "version.create",
        "version.create",
        "alias.set",
        "version.tag",
        "alias.set",
    ]
    assert all(e.actor == "ana" for e in events)
    assert events[-1].target == "fraud@production"
    assert events[-1].before == {"version": 2} and events[-1].after == {"version": 1}
    assert [e.seq for e in events] == list(range(1, 7))
    assert events[1].prev_hash == events[0].hash


def test_audit_log_by_target_and_limit(registry: Registry) -> None:
    populate(registry)
    registry.create_version("iris")
    assert {e.target for e in registry.audit_log(target="iris")} == {"iris", "iris:1"}
    assert len(registry.audit_log(limit=2)) == 2


def test_chain_verifies(registry: Registry) -> None:
    populate(registry)
    check = registry.verify_audit()
    assert check.ok and check.checked == 6


def test_altered_event_is_named(registry: Registry, database: Database) -> None:
    populate(registry)
    with database.write() as connection:
        connection.execute(
            update(audit_events).where(audit_events.c.seq == 3).values(actor="mallory")
        )
    check = registry.verify_audit()
    assert not check.ok
    assert check.bad_seq == 3 and "altered" in check.reason


def test_deleted_event_is_named(registry: Registry, database: Database) -> None:
    populate(registry)
    with database.write() as connection:
        connection.execute(audit_events.delete().where(audit_events.c.seq == 4))
    check = registry.verify_audit()
    assert (check.ok, check.bad_seq) == (False, 5)
    assert "deleted" in check.reason


def test_rewritten_chain_link_is_named(registry: Registry, database: Database) -> None:
    populate(registry)
    with database.write() as connection:
        connection.execute(
            update(audit_events).where(audit_events.c.seq == 2).values(prev_hash="f" * 64)
        )
    check = registry.verify_audit()
    assert (check.ok, check.bad_seq) == (False, 2)
    assert "previous-hash" in check.reason


def test_truncated_tail_is_detected(registry: Registry, database: Database) -> None:
    populate(registry)
    with database.write() as connection:
        connection.execute(audit_events.delete().where(audit_events.c.seq == 6))
    check = registry.verify_audit()
    assert (check.ok, check.bad_seq) == (False, 6)
    assert "missing" in check.reason
