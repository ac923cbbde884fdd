"""The audit log: every change appends an event whose hash covers the previous event's hash.

Appending locks the single `audit_head` row, so events form one chain even with many writers;
`verify` recomputes the chain and names the first event that does not match.

The chain is keyed: each event's hash is an HMAC-SHA256 under the database's audit key (see
`AuditSeal`), so someone who can write the database but does not hold the key cannot rewrite an
event and make it verify. Truncation (deleting the last events and moving the head row back) is
shown by comparing with a head recorded earlier (`head`, `verify(..., head=)`).

Chains written before keys (plain SHA-256 events) stay verifiable: the first keyed append to
such a chain first checks it and appends an `audit.key` event that records how many unkeyed
events precede it and whether they were intact; every event after it must be keyed. Unkeyed
events are reported (`ChainCheck.unkeyed`): only a head recorded earlier vouches for them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from modelyard.errors import AuditHeadMissing
from modelyard.registry._records import AuditEvent, AuditHead
from modelyard.registry._tables import audit_events, audit_head
from modelyard.registry._webhook_outbox import enqueue

GENESIS = "0" * 64
SEAL_OPTION = "modelyard_audit_seal"
"""The execution option under which a write connection carries its database's `AuditSeal`."""
KEY_ACTION = "audit.key"
"""The event that starts the keyed part of a chain written partly before keys."""


class AuditSeal:
    """The key a database's events are sealed with (`None`: unkeyed, plain SHA-256, as before
    keys; for tests and tools), and whether this process has seen the chain's head keyed."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.head_keyed = key is None


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
    key: bytes | None = None,
) -> str:
    """The hash of one event: HMAC-SHA256 under `key` over its canonical JSON, previous hash
    included; plain SHA-256 without a key (events written before keys)."""
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
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    if key is None:
        return hashlib.sha256(canonical).hexdigest()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


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
    """Append an event inside the caller's write transaction; return its sequence number. The
    event is sealed with the key of the connection's `AuditSeal` (see `Database.write`)."""
    at = at or datetime.now(UTC)
    seal = connection.get_execution_options().get(SEAL_OPTION) or AuditSeal(None)
    head = connection.execute(_LOCK_HEAD).first()
    if head is None:
        raise AuditHeadMissing(
            "the audit log's head row is missing, so the log was tampered with; run "
            "`modelyard audit verify` and restore the database from a backup"
        )
    if not seal.head_keyed and _key_chain(connection, seal, head):
        head = connection.execute(_LOCK_HEAD).one()
    seq = _append(connection, seal.key, head, actor, action, target, before, after, at)
    # Webhook deliveries commit with the change they announce (the outbox).
    enqueue(connection, seq=seq, at=at, actor=actor, action=action, target=target,
            before=before, after=after)  # fmt: skip
    return seq


def _append(
    connection: Connection,
    key: bytes | None,
    head: Any,
    actor: str,
    action: str,
    target: str,
    before: Any,
    after: Any,
    at: datetime,
) -> int:
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
        key=key,
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


def _key_chain(connection: Connection, seal: AuditSeal, head: Any) -> bool:
    """Before the first keyed append in this process: when the chain so far is unkeyed, check
    it and append the `audit.key` event (return True: the head moved). A chain already keyed,
    with this key or another, is left alone (`verify` reports a key that does not match)."""
    if head.seq == 0:
        seal.head_keyed = True
        return False
    last = connection.execute(select(audit_events).where(audit_events.c.seq == head.seq)).first()
    if last is not None:
        event = AuditEvent.model_validate({**last._mapping, "at": utc(last.at)})
        if _recompute(event, key=None) != event.hash:  # keyed, or damaged: nothing to adopt
            seal.head_keyed = True
            return False
    check = verify(connection, key=None)
    after: dict[str, Any] = {"unkeyed_events": int(head.seq), "unkeyed_intact": check.ok}
    if not check.ok:
        after["problem"] = f"event {check.bad_seq}: {check.reason}"
    _append(connection, seal.key, head, "modelyard", KEY_ACTION, "audit", None, after,
            datetime.now(UTC))  # fmt: skip
    # Not marked keyed yet: if this transaction rolls back, the next append checks again.
    return True


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
    """The outcome of `verify`: `ok`, how many events were checked, the first bad one, and how
    many events at the start were written before the chain was keyed (`unkeyed`)."""

    ok: bool
    checked: int
    bad_seq: int | None = None
    reason: str = ""
    unkeyed: int = 0


def head(connection: Connection) -> AuditHead:
    """The chain's head: the last event's sequence number and hash (0 and `GENESIS` when
    empty). Record it somewhere the database's writers cannot reach; `verify(head=…)` later
    shows whether the chain was cut back or rewritten since."""
    row = connection.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
    if row is None:
        raise AuditHeadMissing("the audit log's head row is missing; the log was tampered with")
    return AuditHead(seq=int(row.seq), hash=row.hash)


def verify(
    connection: Connection, *, key: bytes | None, head: AuditHead | None = None
) -> ChainCheck:
    """Recompute the whole chain with `key` (None: unkeyed); stop at the first event that does
    not match. With `head` (recorded earlier), also check the chain still reaches it."""
    walk = _Walk(key)
    for event in events(connection):
        problem = walk.step(event)
        if problem:
            return walk.result(bad_seq=event.seq, reason=problem)
        if head is not None and event.seq == head.seq and event.hash != head.hash:
            return walk.result(bad_seq=event.seq, reason=_DIVERGED.format(seq=head.seq))
    row = connection.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
    if row is None:
        return walk.result(bad_seq=walk.checked + 1, reason="the head row is missing")
    if (row.seq, row.hash) != (walk.checked, walk.previous):
        return walk.result(bad_seq=walk.checked + 1, reason="events after this are missing")
    if head is not None and head.seq > walk.checked:
        reason = f"the chain ends at event {walk.checked}, before the head recorded earlier "
        return walk.result(bad_seq=walk.checked + 1, reason=reason + f"({head.seq}); cut back")
    return walk.result()


_DIVERGED = "its hash differs from the head recorded earlier ({seq}); the chain was rewritten"


class _Walk:
    """The state of a walk down the chain: sequence, previous hash, and whether the keyed part
    has begun (after it, every event must be keyed)."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.previous = GENESIS
        self.checked = 0
        self.unkeyed = 0
        self.keyed = False

    def step(self, event: AuditEvent) -> str:
        if event.seq != self.checked + 1:
            return f"expected event {self.checked + 1} here; events were deleted"
        if event.prev_hash != self.previous:
            return "its previous-hash does not match the event before it"
        problem = self._seal(event)
        if not problem:
            self.previous, self.checked = event.hash, self.checked + 1
        return problem

    def _seal(self, event: AuditEvent) -> str:
        if self.key is not None and _recompute(event, key=self.key) == event.hash:
            if not self.keyed and self.unkeyed and event.action != KEY_ACTION:
                return "the first keyed event after unkeyed ones is not an audit.key event"
            self.keyed = True
            return ""
        if not self.keyed and _recompute(event, key=None) == event.hash:
            self.unkeyed += self.key is not None
            return ""
        if self.key is not None:
            return ("its content does not match its hash: it was altered, or sealed with "
                    "another key than this process has (MODELYARD_SECRET_KEY)")  # fmt: skip
        return "its content does not match its hash; it was altered"

    def result(self, *, bad_seq: int | None = None, reason: str = "") -> ChainCheck:
        return ChainCheck(
            ok=bad_seq is None,
            checked=self.checked,
            bad_seq=bad_seq,
            reason=reason,
            unkeyed=self.unkeyed,
        )


def _recompute(event: AuditEvent, *, key: bytes | None) -> str:
    return event_hash(
        seq=event.seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        target=event.target,
        before=event.before,
        after=event.after,
        prev_hash=event.prev_hash,
        key=key,
    )
