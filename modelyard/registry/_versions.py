"""Models and versions: create, read, number, tag and delete them (functions over a connection)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, delete, func, insert, select, update
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


_MODEL_BY_NAME = select(models).where(models.c.name == bindparam("name"))
_MODEL_BY_NAME_LOCKED = _MODEL_BY_NAME.with_for_update()


def model_row(connection: Connection, name: str, *, lock: bool = False) -> Row[Any]:
    """The model's row, or `ModelNotFound`."""
    query = _MODEL_BY_NAME_LOCKED if lock else _MODEL_BY_NAME
    row = connection.execute(query, {"name": check_name(name)}).first()
    if row is None:
        raise ModelNotFound(name)
    return row


def ensure_model(connection: Connection, name: str, *, actor: str) -> Row[Any]:
    """The model's row, creating the model first if it does not exist."""
    row = connection.execute(_MODEL_BY_NAME, {"name": check_name(name)}).first()
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


# Statements built once: executing a prebuilt statement with parameters skips SQLAlchemy's
# per-call construction and cache-key work, which dominated the cost of registering.
_TAKE_NUMBER = (
    update(models)
    .where(models.c.id == bindparam("model_id"))
    .values(last_version=models.c.last_version + 1, updated_at=bindparam("moment"))
    .returning(models.c.last_version)
)
_INSERT_VERSION = insert(versions)
_INSERT_LINEAGE = insert(lineage)


def next_number(connection: Connection, model_id: str) -> int:
    """Take the model's next version number; the row lock makes numbers unique and gap-free."""
    row = connection.execute(_TAKE_NUMBER, {"model_id": model_id, "moment": now()}).one()
    return int(row.last_version)


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
) -> dict[str, Any]:
    """Insert a version (with its search rows and lineage edges); return the row's values."""
    moment = now()
    values = {
        "id": new_id(),
        "model_id": model.id,
        "number": next_number(connection, model.id),
        "manifest_digest": manifest_digest,
        "flavor": flavor,
        "signature": dict(signature) if signature else None,
        "description": description,
        "params": dict(params),
        "metrics": dict(metrics),
        "tags": dict(tags),
        "state": State.REGISTERED.value,
        "run_id": run_id,
        "created_by": actor,
        "created_at": moment,
        "updated_at": moment,
    }
    connection.execute(_INSERT_VERSION, values)
    _insert_pairs(connection, version_params, values["id"], params)
    _insert_pairs(connection, version_metrics, values["id"], metrics)
    _insert_pairs(connection, version_tags, values["id"], tags)
    if parents:
        relation = "merge" if len(parents) > 1 else "parent"
        edges = [
            {"child_id": values["id"], "parent_id": parent, "position": i, "relation": relation,
             "details": {}}
            for i, parent in enumerate(parents)
        ]  # fmt: skip
        connection.execute(_INSERT_LINEAGE, edges)
    return values


_INSERT_PAIRS = {
    table.name: insert(table) for table in (version_params, version_metrics, version_tags)
}


def _insert_pairs(
    connection: Connection, table: Any, version_id: str, pairs: Mapping[str, Any]
) -> None:
    if pairs:
        rows = [{"version_id": version_id, "key": k, "value": v} for k, v in pairs.items()]
        connection.execute(_INSERT_PAIRS[table.name], rows)


def version_select() -> Select[Any]:
    """Version rows joined with their model's name (as `name`)."""
    return select(versions, models.c.name).join(models, models.c.id == versions.c.model_id)


_BY_ID = version_select().where(versions.c.id == bindparam("version_id"))
_BY_NUMBER = version_select().where(
    versions.c.model_id == bindparam("model_id"), versions.c.number == bindparam("number")
)
LATEST = (
    version_select()
    .where(versions.c.model_id == bindparam("model_id"))
    .order_by(versions.c.number.desc())
    .limit(1)
)


def resolve_id(connection: Connection, version_id: str) -> Row[Any]:
    """The version row with this id."""
    row = connection.execute(_BY_ID, {"version_id": version_id}).first()
    if row is None:
        raise VersionNotFound(version_id)
    return row


def resolve(
    connection: Connection, reference: str | Reference, *, model: Row[Any] | None = None
) -> Row[Any]:
    """The version row a reference names (with the model's name as `name`); pass the model's
    row when the caller has it already, to save a query."""
    ref = Reference.parse(reference) if isinstance(reference, str) else reference
    if model is None or model.name != ref.name:
        model = model_row(connection, ref.name)
    if ref.number is not None:
        row = connection.execute(_BY_NUMBER, {"model_id": model.id, "number": ref.number}).first()
    elif ref.alias is not None:
        version_id = alias_target(connection, model.id, ref.alias, back=ref.back, ref=str(ref))
        row = connection.execute(_BY_ID, {"version_id": version_id}).first()
    else:
        row = connection.execute(LATEST, {"model_id": model.id}).first()
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


_PARENT = versions.alias("parent")
_PARENT_MODEL = models.alias("parent_model")
_PARENTS_OF = (
    select(lineage.c.child_id, _PARENT.c.number, _PARENT_MODEL.c.name)
    .join(_PARENT, _PARENT.c.id == lineage.c.parent_id)
    .join(_PARENT_MODEL, _PARENT_MODEL.c.id == _PARENT.c.model_id)
    .where(lineage.c.child_id.in_(bindparam("ids", expanding=True)))
    .order_by(lineage.c.child_id, lineage.c.position)
)


def to_version(connection: Connection, row: Row[Any]) -> ModelVersion:
    """A `ModelVersion` record from a version row joined with its model's name."""
    return to_versions(connection, [row])[0]


def to_versions(connection: Connection, rows: Sequence[Row[Any]]) -> list[ModelVersion]:
    """Records for many rows, with every parent fetched in one query (not one per row)."""
    parents: dict[str, list[str]] = {}
    for start in range(0, len(rows), 500):  # keep the IN list within every database's limits
        ids = [row.id for row in rows[start : start + 500]]
        for edge in connection.execute(_PARENTS_OF, {"ids": ids}):
            parents.setdefault(edge.child_id, []).append(f"{edge.name}:{edge.number}")
    records = []
    for row in rows:
        values = row._asdict()
        values["parents"] = parents.get(values["id"], [])
        values["created_at"] = utc(values["created_at"])
        values["updated_at"] = utc(values["updated_at"])
        records.append(ModelVersion.model_validate(values))
    return records


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
