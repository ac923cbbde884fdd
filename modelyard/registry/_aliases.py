"""Aliases: movable names for versions (`production`, `champion`, `exp/lr-sweep`), with history.

Moving an alias is a deploy; moving it back is a rollback. Every move is kept in
`alias_history` and in the audit log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from modelyard.errors import AliasNotFound
from modelyard.registry._audit import append, utc
from modelyard.registry._notify import AliasMove, announce
from modelyard.registry._records import AliasEvent
from modelyard.registry._references import check_alias
from modelyard.registry._tables import alias_history, aliases, versions
from modelyard.registry._versions import now

_TARGET = select(aliases.c.version_id).where(
    aliases.c.model_id == bindparam("model_id"), aliases.c.name == bindparam("alias")
)
_TARGET_AND_NUMBER = (
    select(aliases.c.version_id, versions.c.number)
    .join(versions, versions.c.id == aliases.c.version_id)
    .where(aliases.c.model_id == bindparam("model_id"), aliases.c.name == bindparam("alias"))
)
_POINT = (
    update(aliases)
    .where(aliases.c.model_id == bindparam("b_model_id"), aliases.c.name == bindparam("b_alias"))
    .values(
        version_id=bindparam("b_version_id"),
        updated_by=bindparam("b_actor"),
        updated_at=bindparam("b_moment"),
    )
)
_DROP = delete(aliases).where(
    aliases.c.model_id == bindparam("model_id"), aliases.c.name == bindparam("alias")
)
_CREATE = insert(aliases)
_RECORD = insert(alias_history)


def current_target(connection: Connection, model_id: str, alias: str) -> str | None:
    """The version id the alias points at, if it exists."""
    return connection.execute(_TARGET, {"model_id": model_id, "alias": alias}).scalar()


def move(
    connection: Connection,
    *,
    model: Row[Any],
    alias: str,
    version: Row[Any] | None,
    actor: str,
    reason: str = "",
    kind: str = "set",
) -> None:
    """Point `alias` at `version`, or delete it when `version` is None; record the move."""
    check_alias(alias)
    key = {"model_id": model.id, "alias": alias}
    current = connection.execute(_TARGET_AND_NUMBER, key).first()
    previous = current.version_id if current is not None else None
    if version is None and previous is None:
        known = connection.execute(select(aliases.c.name).where(aliases.c.model_id == model.id))
        raise AliasNotFound(model.name, alias, known=known.scalars())
    moment = now()
    if version is None:
        connection.execute(_DROP, key)
    elif previous is not None:
        connection.execute(
            _POINT,
            {"b_model_id": model.id, "b_alias": alias, "b_version_id": version.id,
             "b_actor": actor, "b_moment": moment},
        )  # fmt: skip
    else:
        connection.execute(
            _CREATE,
            {"model_id": model.id, "name": alias, "version_id": version.id,
             "updated_by": actor, "updated_at": moment},
        )  # fmt: skip
    connection.execute(
        _RECORD,
        {
            "model_id": model.id,
            "name": alias,
            "version_id": version.id if version is not None else None,
            "previous_version_id": previous,
            "kind": kind if version is not None else "delete",
            "actor": actor,
            "reason": reason,
            "at": moment,
        },
    )
    before = current.number if current is not None else None
    after = version.number if version is not None else None
    action = f"alias.{kind}" if version is not None else "alias.delete"
    announce(connection, AliasMove(model.name, alias, after))  # delivered at commit
    append(
        connection,
        actor=actor,
        action=action,
        target=f"{model.name}@{alias}",
        before={"version": before},
        after={"version": after, "reason": reason} if reason else {"version": after},
    )


def history(
    connection: Connection, *, model: Row[Any], alias: str | None = None
) -> list[AliasEvent]:
    """Every move of the model's aliases (or one alias), newest first."""
    query = (
        select(alias_history)
        .where(alias_history.c.model_id == model.id)
        .order_by(alias_history.c.id.desc())
    )
    if alias is not None:
        query = query.where(alias_history.c.name == alias)
    rows = connection.execute(query).all()
    ids = {row.version_id for row in rows} | {row.previous_version_id for row in rows}
    numbers = _numbers(connection, {i for i in ids if i is not None})
    return [
        AliasEvent(
            name=model.name,
            alias=row.name,
            version=numbers.get(row.version_id),
            previous=numbers.get(row.previous_version_id),
            actor=row.actor,
            reason=row.reason,
            at=utc(row.at),
        )
        for row in rows
    ]


def rollback_target(connection: Connection, *, model: Row[Any], alias: str) -> str | None:
    """Where a rollback takes the alias: the target before the current one, skipping versions
    already rolled away from, so repeated rollbacks keep walking back (v3 -> v2 -> v1)."""
    rows = connection.execute(
        select(alias_history.c.version_id, alias_history.c.kind)
        .where(alias_history.c.model_id == model.id, alias_history.c.name == alias)
        .order_by(alias_history.c.id)
    ).all()
    stack: list[str] = []
    for row in rows:
        if row.kind == "delete":
            stack.clear()
        elif row.kind == "rollback":
            while stack and stack[-1] != row.version_id:
                stack.pop()
        else:
            stack.append(row.version_id)
    live = set(connection.execute(select(versions.c.id).where(versions.c.id.in_(stack))).scalars())
    candidates = [version_id for version_id in stack[:-1] if version_id in live]
    return candidates[-1] if candidates else None


def _numbers(connection: Connection, ids: set[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = connection.execute(
        select(versions.c.id, versions.c.number).where(versions.c.id.in_(ids))
    )
    return {row.id: row.number for row in rows}
