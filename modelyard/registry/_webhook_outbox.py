"""The webhook outbox: registry events turned into delivery rows inside the change's transaction.

`_audit.append` calls `enqueue` for every event it writes. Only the actions that map to a
webhook event go further, and those cost one indexed query for the active subscriptions (no
rows, nothing more). Each matching subscription gets one `pending` delivery row, committed (or
rolled back) with the change itself, so a change is never announced without happening, nor
happens without being announced. The dispatcher (`_webhook_delivery`) sends them later.

Audit actions -> events:

    version.create                    -> version.created (+ approval.requested, see below)
    version.transition                -> version.state_changed (+ approval.requested)
    alias.set, alias.rollback,
    alias.delete                      -> alias.moved
    version.tag of modelyard.signature -> signature.added

`approval.requested`: when a version enters a state (registered at creation, or any state by a
transition) whose next forward state has an `approval` gate on its model; the payload names the
gated state and how many approvals it needs. A refused transition writes nothing (its
transaction rolls back), so refusals are not announced.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, insert, select

from modelyard.registry._tables import gates, models, webhook_deliveries, webhooks
from modelyard.security import SIGNATURE_TAG

EVENTS = (
    "version.created",
    "version.state_changed",
    "alias.moved",
    "approval.requested",
    "signature.added",
)
"""Every event a registry webhook can subscribe to."""

PING = "ping"
"""The event of a test delivery (`Webhooks.ping`)."""

_MAPPED = {"version.create", "version.transition", "alias.set", "alias.rollback", "alias.delete"}
_ACTIVE = select(webhooks.c.id, webhooks.c.models, webhooks.c.events).where(
    webhooks.c.active.is_(True)
)
_NEXT_STATE = {"registered": "validated", "validated": "staging", "staging": "production"}


def enqueue(
    connection: Connection,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    before: Any,
    after: Any,
) -> int:
    """Insert the deliveries an audit event makes (inside the caller's transaction); return
    how many."""
    if action not in _MAPPED and not _is_signature(action, after):
        return 0
    subscriptions = connection.execute(_ACTIVE).all()
    if not subscriptions:
        return 0
    model = target.split("@", 1)[0] if action.startswith("alias.") else target.split(":", 1)[0]
    wanted = [row for row in subscriptions if fnmatchcase(model, row.models)]
    if not wanted:
        return 0
    base = {"model": model, "actor": actor, "at": at.isoformat(), "audit_seq": seq}
    payloads = _payloads(connection, action, target, model, before or {}, after or {})
    rows = [
        {
            "id": delivery_id(index),
            "webhook_id": row.id,
            "event": event,
            "audit_seq": seq,
            "payload": {"event": event, **base, **details},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": at,
            "last_error": "",
            "created_at": at,
        }
        for index, (event, details) in enumerate(payloads)
        for row in wanted
        if event in row.events
    ]
    if rows:
        connection.execute(insert(webhook_deliveries), rows)
    return len(rows)


def delivery_id(index: int = 0) -> str:
    """A new delivery id (32 hex digits) that sorts by creation: the dispatcher sends due
    deliveries in id order, so one change's events arrive in the order they happened."""
    return f"{time.time_ns():016x}{index:04x}{secrets.token_hex(6)}"


def _is_signature(action: str, after: Any) -> bool:
    return action == "version.tag" and isinstance(after, dict) and bool(after.get(SIGNATURE_TAG))


def _payloads(
    connection: Connection,
    action: str,
    target: str,
    model: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> list[tuple[str, dict[str, Any]]]:
    """(event, its fields) for one audit event."""
    if action.startswith("alias."):
        alias = target.split("@", 1)[1]
        moved = {"alias": alias, "from_version": before.get("version"),
                 "to_version": after.get("version"), "kind": action.split(".", 1)[1],
                 "reason": after.get("reason", "")}  # fmt: skip
        return [("alias.moved", moved)]
    version = {"ref": target, "version": int(target.rsplit(":", 1)[1])}
    if action == "version.tag":
        return [("signature.added", {**version, "signature": after[SIGNATURE_TAG]})]
    found: list[tuple[str, dict[str, Any]]]
    if action == "version.create":
        state = "registered"
        found = [("version.created", {**version, "manifest_digest": after.get("manifest_digest")})]
    else:
        state = str(after.get("state"))
        found = [("version.state_changed", {**version, "from_state": before.get("state"),
                  "to_state": state, "comment": after.get("comment", "")})]  # fmt: skip
    needed = _approvals_needed(connection, model, _NEXT_STATE.get(state))
    if needed:
        found.append(("approval.requested", {**version, "state": state,
                      "for_state": _NEXT_STATE[state], "approvals_needed": needed}))  # fmt: skip
    return found


def _approvals_needed(connection: Connection, model: str, state: str | None) -> int:
    """The approvals the model's gates ask for before `state` (0: none)."""
    if state is None:
        return 0
    configs = connection.execute(
        select(gates.c.config)
        .join(models, models.c.id == gates.c.model_id)
        .where(models.c.name == model, gates.c.kind == "approval", gates.c.to_state == state)
    ).scalars()
    return max((int(config.get("count", 1)) for config in configs), default=0)
