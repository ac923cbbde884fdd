"""The audit log: every change appends an event whose hash covers the previous event's hash.

Appending locks the single `audit_head` row, so events form one chain even with many writers;
`verify` recomputes the chain and names the first event that does not match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from modelyard.registry._records import AuditEvent
from modelyard.registry._tables import audit_events, audit_head

GENESIS = "0" * 64


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive values (SQLite gives those back) are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def event_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    before: Any,
    after: Any,
    prev_hash: str,
) -> str:
    """The hash of one event: SHA-256 over its canonical JSON, previous hash included."""
    body = {
        "seq": seq,
        "at": utc(at).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def append(
    connection: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    at: datetime | None = None,
) -> int:
    """Append an event inside the caller's write transaction; return its sequence number."""
    at = at or datetime.now(UTC)
    head = connection.execute(_LOCK_HEAD).one()
    seq = int(head.seq) + 1
    digest = event_hash(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        target=target,
        before=before,
        after=after,
        prev_hash=head.hash,
    )
    event = {"seq": seq, "at": at, "actor": actor, "action": action, "target": target,
             "before": before, "after": after, "prev_hash": head.hash, "hash": digest}  # fmt: skip
    move = {"new_seq": seq, "new_hash": digest}
    if connection.dialect.name == "postgresql":
        # One statement (a data-modifying WITH) saves a round trip on every audited change.
        connection.execute(
            _INSERT_EVENT_AND_MOVE_HEAD, {f"event_{k}": v for k, v in event.items()} | move
        )
    else:
        connection.execute(_INSERT_EVENT, event)
        connection.execute(_MOVE_HEAD, move)
    return seq


_LOCK_HEAD = (
    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
)
_INSERT_EVENT = audit_events.insert()
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)

_INSERT_EVENT_AND_MOVE_HEAD = _MOVE_HEAD.add_cte(
    audit_events.insert()
    .values({column: bindparam(f"event_{column.name}", type_=column.type)
             for column in audit_events.c})
    .cte("event")
)  # fmt: skip


def events(
    connection: Connection,
    *,
    after_seq: int = 0,
    limit: int | None = None,
    target: str | None = None,
) -> Iterator[AuditEvent]:
    """Events in order, optionally only those about `target` (a model name or `name:number`)."""
    query = select(audit_events).where(audit_events.c.seq > after_seq).order_by(audit_events.c.seq)
    if target is not None:
        query = query.where(
            (audit_events.c.target == target) | audit_events.c.target.startswith(f"{target}:")
        )
    if limit is not None:
        query = query.limit(limit)
    for row in connection.execute(query):
        yield AuditEvent.model_validate({**row._mapping, "at": utc(row.at)})


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The outcome of `verify`: `ok`, how many events were checked, and the first bad one."""

    ok: bool
    checked: int
    bad_seq: int | None = None
    reason: str = ""


def verify(connection: Connection) -> ChainCheck:
    """Recompute the whole chain; stop at the first event that does not match."""
    previous, expected_seq, checked = GENESIS, 1, 0
    for event in events(connection):
        problem = _check(event, previous=previous, expected_seq=expected_seq)
        if problem:
            return ChainCheck(ok=False, checked=checked, bad_seq=event.seq, reason=problem)
        previous, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    head = connection.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if (head.seq, head.hash) != (checked, previous):
        return ChainCheck(
            ok=False, checked=checked, bad_seq=checked + 1, reason="events after this are missing"
        )
    return ChainCheck(ok=True, checked=checked)


def _check(event: AuditEvent, *, previous: str, expected_seq: int) -> str:
    if event.seq != expected_seq:
        return f"expected event {expected_seq} here; events were deleted"
    if event.prev_hash != previous:
        return "its previous-hash does not match the event before it"
    recomputed = event_hash(
        seq=event.seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        target=event.target,
        before=event.before,
        after=event.after,
        prev_hash=event.prev_hash,
    )
    if recomputed != event.hash:
        return "its content does not match its hash; it was altered"
    return ""
