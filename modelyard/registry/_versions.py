"""Models and versions: create, read, number, tag and delete them (functions over a connection)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from modelyard.errors import InvalidReference, ModelyardError, NotFound
from modelyard.registry._audit import append, utc
from modelyard.registry._records import Model, ModelVersion, State
from modelyard.registry._references import Reference, check_name
from modelyard.registry._tables import (
    alias_history,
    aliases,
    lineage,
    models,
    version_metrics,
    version_params,
    version_tags,
    versions,
)


class ModelNotFound(NotFound):
    """No model has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"model {name!r} does not exist")
        self.name = name


class VersionNotFound(NotFound):
    """The reference names no version."""

    def __init__(self, reference: str, *, detail: str = "") -> None:
        super().__init__(f"version {reference} does not exist" + (f": {detail}" if detail else ""))
        self.reference = reference


class VersionInUse(ModelyardError):
    """The version cannot be deleted while aliases point at it."""

    status_code = 409


def new_id() -> str:
    """A fresh unique id (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def model_row(connection: Connection, name: str, *, lock: bool = False) -> Row[Any]:
    """The model's row, or `ModelNotFound`."""
    query = select(models).where(models.c.name == check_name(name))
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise ModelNotFound(name)
    return row


def ensure_model(connection: Connection, name: str, *, actor: str) -> Row[Any]:
    """The model's row, creating the model first if it does not exist."""
    row = connection.execute(select(models).where(models.c.name == check_name(name))).first()
    if row is not None:
        return row
    moment = now()
    values = dict(
        id=new_id(),
        name=name,
        description="",
        owner=actor,
        tags={},
        last_version=0,
        created_at=moment,
        updated_at=moment,
    )
    try:
        with connection.begin_nested():
            connection.execute(insert(models).values(values))
    except SQLIntegrityError:
        return model_row(connection, name)  # another writer created it a moment ago
    append(connection, actor=actor, action="model.create", target=name, after={"owner": actor})
    return model_row(connection, name)


def next_number(connection: Connection, model_id: str) -> int:
    """Take the model's next version number; the row lock makes numbers unique and gap-free."""
    connection.execute(
        update(models).where(models.c.id == model_id).values(last_version=models.c.last_version + 1)
    )
    return int(
        connection.execute(
            select(models.c.last_version).where(models.c.id == model_id)
        ).scalar_one()
    )


def insert_version(
    connection: Connection,
    *,
    model: Row[Any],
    parents: Sequence[str],
    manifest_digest: str | None,
    flavor: str | None,
    signature: Mapping[str, Any] | None,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    description: str,
    run_id: str | None,
    actor: str,
) -> str:
    """Insert a version (with its search rows and lineage edges); return its id."""
    version_id, moment = new_id(), now()
    number = next_number(connection, model.id)
    connection.execute(
        insert(versions).values(
            id=version_id,
            model_id=model.id,
            number=number,
            manifest_digest=manifest_digest,
            flavor=flavor,
            signature=dict(signature) if signature else None,
            description=description,
            params=dict(params),
            metrics=dict(metrics),
            tags=dict(tags),
            state=State.REGISTERED.value,
            run_id=run_id,
            created_by=actor,
            created_at=moment,
            updated_at=moment,
        )
    )
    _insert_pairs(connection, version_params, version_id, params)
    _insert_pairs(connection, version_metrics, version_id, metrics)
    _insert_pairs(connection, version_tags, version_id, tags)
    if parents:
        connection.execute(
            insert(lineage),
            [
                {
                    "child_id": version_id,
                    "parent_id": parent,
                    "position": i,
                    "relation": "parent",
                    "details": {},
                }
                for i, parent in enumerate(parents)
            ],
        )
    connection.execute(update(models).where(models.c.id == model.id).values(updated_at=moment))
    return version_id


def _insert_pairs(
    connection: Connection, table: Any, version_id: str, pairs: Mapping[str, Any]
) -> None:
    if pairs:
        rows = [{"version_id": version_id, "key": k, "value": v} for k, v in pairs.items()]
        connection.execute(insert(table), rows)


def version_select() -> Select[Any]:
    """Version rows joined with their model's name (as `name`)."""
    return select(versions, models.c.name).join(models, models.c.id == versions.c.model_id)


def resolve_id(connection: Connection, version_id: str) -> Row[Any]:
    """The version row with this id."""
    row = connection.execute(version_select().where(versions.c.id == version_id)).first()
    if row is None:
        raise VersionNotFound(version_id)
    return row


def resolve(connection: Connection, reference: str | Reference) -> Row[Any]:
    """The version row a reference names (with the model's name as `name`)."""
    ref = Reference.parse(reference) if isinstance(reference, str) else reference
    model = model_row(connection, ref.name)
    base = version_select()
    if ref.number is not None:
        row = connection.execute(
            base.where(versions.c.model_id == model.id, versions.c.number == ref.number)
        ).first()
    elif ref.alias is not None:
        version_id = alias_target(connection, model.id, ref.alias, back=ref.back, ref=str(ref))
        row = connection.execute(base.where(versions.c.id == version_id)).first()
    else:
        row = connection.execute(
            base.where(versions.c.model_id == model.id).order_by(versions.c.number.desc()).limit(1)
        ).first()
    if row is None:
        raise VersionNotFound(str(ref))
    return row


def alias_target(connection: Connection, model_id: str, alias: str, *, back: int, ref: str) -> str:
    """The version an alias points at now (`back=0`) or `back` moves ago."""
    if back == 0:
        target = connection.execute(
            select(aliases.c.version_id).where(
                aliases.c.model_id == model_id, aliases.c.name == alias
            )
        ).scalar()
        if target is None:
            raise VersionNotFound(ref, detail=f"no alias {alias!r}")
        return str(target)
    moves = connection.execute(
        select(alias_history.c.version_id)
        .where(alias_history.c.model_id == model_id, alias_history.c.name == alias)
        .order_by(alias_history.c.id.desc())
        .offset(back)
        .limit(1)
    ).first()
    if moves is None or moves.version_id is None:
        raise VersionNotFound(ref, detail=f"alias {alias!r} has fewer than {back} earlier targets")
    return str(moves.version_id)


def to_version(connection: Connection, row: Row[Any]) -> ModelVersion:
    """A `ModelVersion` record from a version row joined with its model's name."""
    parents = connection.execute(
        select(versions.c.number, models.c.name)
        .join(lineage, lineage.c.parent_id == versions.c.id)
        .join(models, models.c.id == versions.c.model_id)
        .where(lineage.c.child_id == row.id)
        .order_by(lineage.c.position)
    ).all()
    return ModelVersion(
        id=row.id,
        name=row.name,
        number=row.number,
        parents=[f"{p.name}:{p.number}" for p in parents],
        manifest_digest=row.manifest_digest,
        flavor=row.flavor,
        signature=row.signature,
        description=row.description,
        params=row.params,
        metrics=row.metrics,
        tags=row.tags,
        state=State(row.state),
        run_id=row.run_id,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def to_model(connection: Connection, row: Row[Any]) -> Model:
    """A `Model` record, with its aliases as name -> version number."""
    pointed = connection.execute(
        select(aliases.c.name, versions.c.number)
        .join(versions, versions.c.id == aliases.c.version_id)
        .where(aliases.c.model_id == row.id)
        .order_by(aliases.c.name)
    ).all()
    return Model(
        id=row.id,
        name=row.name,
        description=row.description,
        owner=row.owner,
        tags=row.tags,
        latest_version=row.last_version,
        aliases={a.name: a.number for a in pointed},
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def delete_version(connection: Connection, row: Row[Any], *, actor: str) -> None:
    """Delete a version nothing points at; children keep their other lineage."""
    pointing = (
        connection.execute(
            select(aliases.c.name).where(aliases.c.version_id == row.id).order_by(aliases.c.name)
        )
        .scalars()
        .all()
    )
    if pointing:
        raise VersionInUse(
            f"version {row.name}:{row.number} is the target of alias(es) {', '.join(pointing)}; "
            "move or delete them first"
        )
    connection.execute(delete(versions).where(versions.c.id == row.id))
    append(
        connection,
        actor=actor,
        action="version.delete",
        target=f"{row.name}:{row.number}",
        before={"manifest_digest": row.manifest_digest, "state": row.state},
    )


def set_version_tag(
    connection: Connection, row: Row[Any], key: str, value: str | None, *, actor: str
) -> None:
    """Set (or with `value=None` delete) a tag of a version, in the JSON and the search rows."""
    if not key:
        raise InvalidReference(key, expected="a non-empty tag key")
    tags = dict(row.tags)
    before = tags.get(key)
    connection.execute(
        delete(version_tags).where(version_tags.c.version_id == row.id, version_tags.c.key == key)
    )
    if value is None:
        tags.pop(key, None)
    else:
        tags[key] = value
        connection.execute(insert(version_tags).values(version_id=row.id, key=key, value=value))
    connection.execute(
        update(versions).where(versions.c.id == row.id).values(tags=tags, updated_at=now())
    )
    append(
        connection,
        actor=actor,
        action="version.tag" if value is not None else "version.untag",
        target=f"{row.name}:{row.number}",
        before={key: before},
        after={key: value},
    )


def count_versions(connection: Connection, model_id: str) -> int:
    """How many versions the model has now (deleted ones not counted)."""
    return int(
        connection.execute(select(func.count()).where(versions.c.model_id == model_id)).scalar_one()
    )
