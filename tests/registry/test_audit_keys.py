"""The keyed audit chain: HMAC under the database's audit key, old unkeyed chains adopted once,
and a head recorded outside the database to show truncation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from modelyard.errors import ConfigurationError
from modelyard.registry import AuditHead, AuditHeadMissing, Database, Registry
from modelyard.registry._audit import GENESIS, event_hash, utc
from modelyard.registry._tables import audit_events, audit_head

SECRET = b"operator secret " * 2


@pytest.fixture
def keyed(database_url_for: str) -> Iterator[Registry]:
    database = Database(database_url_for, secret=SECRET)
    database.open()
    yield Registry(database, actor="ana")
    database.close()


def populate(registry: Registry, count: int = 3) -> None:
    for number in range(count):
        registry.create_version("fraud", metrics={"auc": 0.9 + number / 100})


def rewrite_plain(database: Database, *, start: int, actor: str | None = None) -> None:
    """What someone with write access but no key can do: change event `start` (its actor) and
    reseal it and every later event with plain SHA-256, moving the head along."""
    with database.write() as connection:
        rows = connection.execute(select(audit_events).order_by(audit_events.c.seq)).all()
        previous = GENESIS if start == 1 else rows[start - 2].hash
        for row in rows[start - 1 :]:
            values = {**row._mapping, "prev_hash": previous}
            if row.seq == start and actor is not None:
                values["actor"] = actor
            fields = {k: values[k] for k in ("seq", "actor", "action", "target", "before", "after")}
            digest = event_hash(**fields, at=utc(row.at), prev_hash=previous)
            connection.execute(
                update(audit_events)
                .where(audit_events.c.seq == row.seq)
                .values(actor=values["actor"], prev_hash=previous, hash=digest)
            )
            previous = digest
        connection.execute(update(audit_head).values(hash=previous))


def test_keyed_events_are_hmacs_not_plain_hashes(keyed: Registry) -> None:
    populate(keyed)
    check = keyed.verify_audit()
    assert (check.ok, check.checked, check.unkeyed) == (True, 4, 0)
    event = keyed.audit_log()[0]
    fields = event.model_dump(exclude={"hash", "at"})
    assert event_hash(**fields, at=event.at) != event.hash


def test_an_event_rewritten_with_plain_sha256_fails(keyed: Registry) -> None:
    populate(keyed)
    rewrite_plain(keyed.database, start=3, actor="mallory")
    check = keyed.verify_audit()
    assert (check.ok, check.bad_seq) == (False, 3)
    assert "altered" in check.reason


def test_a_chain_rewritten_whole_without_the_key_shows_as_unkeyed_and_fails_its_head(
    keyed: Registry,
) -> None:
    populate(keyed)
    recorded = keyed.audit_head()
    rewrite_plain(keyed.database, start=1, actor="mallory")
    check = keyed.verify_audit()
    assert check.ok and check.unkeyed == 4  # nothing keyed is left: only the head can tell
    against_head = keyed.verify_audit(head=str(recorded))
    assert (against_head.ok, against_head.bad_seq) == (False, 4)
    assert "rewritten" in against_head.reason


def test_truncation_shows_against_a_head_recorded_earlier(keyed: Registry) -> None:
    populate(keyed, count=5)
    recorded = keyed.audit_head()
    assert recorded.seq == 6 and str(recorded) == f"6:{recorded.hash}"
    with keyed.database.write() as connection:
        connection.execute(audit_events.delete().where(audit_events.c.seq > 4))
        kept = connection.execute(select(audit_events.c.hash).where(audit_events.c.seq == 4))
        connection.execute(update(audit_head).values(seq=4, hash=kept.scalar_one()))
    assert keyed.verify_audit().ok  # the cut is clean: only the recorded head shows it
    check = keyed.verify_audit(head=recorded)
    assert (check.ok, check.bad_seq) == (False, 5)
    assert "cut back" in check.reason and "(6)" in check.reason


def test_a_deleted_head_row_fails_verify_and_refuses_appends(keyed: Registry) -> None:
    populate(keyed)
    with keyed.database.write() as connection:
        connection.execute(audit_head.delete())
    check = keyed.verify_audit()
    assert not check.ok and "head row is missing" in check.reason
    with pytest.raises(AuditHeadMissing, match="head row is missing"):
        keyed.create_version("fraud")


def test_another_key_does_not_verify(keyed: Registry, database_url_for: str) -> None:
    populate(keyed)
    other = Database(database_url_for, secret=b"another secret")
    other.open()
    try:
        check = Registry(other, actor="ana").verify_audit()
    finally:
        other.close()
    assert (check.ok, check.bad_seq) == (False, 1)
    assert "another key" in check.reason


def test_an_unkeyed_chain_is_keyed_once_and_stays_verifiable(
    registry: Registry, database_url_for: str
) -> None:
    populate(registry)  # written before keys: plain SHA-256
    database = Database(database_url_for, secret=SECRET)
    database.open()
    try:
        keyed = Registry(database, actor="ana")
        keyed.create_version("fraud")
        keyed.set_tag("fraud:1", "team", "risk")
        events = keyed.audit_log()
        check = keyed.verify_audit()
    finally:
        database.close()
    assert [e.action for e in events[4:]] == ["audit.key", "version.create", "version.tag"]
    assert events[4].after == {"unkeyed_events": 4, "unkeyed_intact": True}
    assert (check.ok, check.checked, check.unkeyed) == (True, 7, 4)
    # an unkeyed writer can no longer add to it unnoticed
    registry.create_version("fraud")
    database = Database(database_url_for, secret=SECRET)
    database.open()
    try:
        late = Registry(database, actor="ana").verify_audit()
    finally:
        database.close()
    assert (late.ok, late.bad_seq) == (False, 8)


def test_keying_records_an_unkeyed_chain_that_was_already_broken(
    registry: Registry, database_url_for: str
) -> None:
    populate(registry)
    with registry.database.write() as connection:
        connection.execute(update(audit_events).where(audit_events.c.seq == 2).values(actor="eve"))
    database = Database(database_url_for, secret=SECRET)
    database.open()
    try:
        keyed = Registry(database, actor="ana")
        keyed.create_version("fraud")
        key_event = keyed.audit_log()[4]
        check = keyed.verify_audit()
    finally:
        database.close()
    assert key_event.action == "audit.key" and key_event.after["unkeyed_intact"] is False
    assert (check.ok, check.bad_seq) == (False, 2)


def test_audit_head_text_round_trips_and_refuses_garbage() -> None:
    head = AuditHead(seq=12, hash="a" * 64)
    assert AuditHead.parse(str(head)) == head
    for bad in ["", "12", "x:" + "a" * 64, "12:" + "g" * 64, "12:abc"]:
        with pytest.raises(ConfigurationError, match="SEQ:HASH"):
            AuditHead.parse(bad)
