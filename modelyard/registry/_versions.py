"""Models and versions: create, read, number, tag and delete them (functions over a connection)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Select,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from modelyard.errors import (
    InvalidReference,
    ModelNotFound,
    VersionInUse,
    VersionNotFound,
    did_you_mean,
)
from modelyard.registry._audit import append, utc
from modelyard.registry._model_text import check_tag_key
from modelyard.registry._numbers import INT32_MAX
from modelyard.registry._records import Model, ModelVersion, State
from modelyard.registry._references import Reference, check_name
from modelyard.registry._tables import (
    alias_history,
    aliases,
    lineage,
    models,
    version_tags,
    versions,
)
from modelyard.registry._version_rows import insert_version_rows


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
        # Only on a miss: every name, so a typo gets "did you mean".
        raise ModelNotFound(name, known=connection.execute(select(models.c.name)).scalars())
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
    .where(models.c.name == bindparam("model_name"))
    .values(last_version=models.c.last_version + 1, updated_at=bindparam("moment"))
    .returning(*models.c)
)


def take_number(connection: Connection, name: str, *, actor: str) -> Row[Any]:
    """Take the next version number of the model (creating the model on first use); return
    the model's row, whose `last_version` is the number taken. The row stays locked until the
    transaction ends, so numbers are unique and gap-free. Reading the model and taking its
    number is one statement: on PostgreSQL, one round trip fewer per registration."""
    values = {"model_name": check_name(name), "moment": now()}
    row = connection.execute(_TAKE_NUMBER, values).first()
    if row is None:
        ensure_model(connection, name, actor=actor)
        row = connection.execute(_TAKE_NUMBER, values).one()
    return row


def insert_version(
    connection: Connection,
    *,
    model: Row[Any],
    number: int,
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
    relation: str | None = None,
) -> dict[str, Any]:
    """Insert version `number` (taken with `take_number`), with its search rows and lineage
    edges (named `relation`); return the row's values."""
    moment = now()
    values = {
        "id": new_id(),
        "model_id": model.id,
        "number": number,
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
    pairs = {"params": params, "metrics": metrics, "tags": tags}
    insert_version_rows(connection, values, pairs=pairs, parents=parents, relation=relation)
    return values


_PARENT = versions.alias("parent")
_PARENT_MODEL = models.alias("parent_model")
PARENT_REFS = (
    select(
        func.aggregate_strings(
            cast(lineage.c.position, String)
            + ":"
            + _PARENT_MODEL.c.name
            + ":"
            + cast(_PARENT.c.number, String),
            ",",
        )
    )
    .select_from(lineage)
    .join(_PARENT, _PARENT.c.id == lineage.c.parent_id)
    .join(_PARENT_MODEL, _PARENT_MODEL.c.id == _PARENT.c.model_id)
    .where(lineage.c.child_id == versions.c.id)
    .scalar_subquery()
    .label("parent_refs")
)
"""A version's parents as `position:name:number,…` (in no set order), read with the version
itself: a second query for them cost more than the search it followed. Names hold neither `:`
nor `,`."""


def version_select() -> Select[Any]:
    """Version rows joined with their model's name (as `name`) and their parents (as
    `parent_refs`, see `PARENT_REFS`)."""
    return select(versions, models.c.name, PARENT_REFS).join(
        models, models.c.id == versions.c.model_id
    )


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
LATEST_REF = (
    select(versions.c.id, versions.c.number, models.c.name)
    .join(models, models.c.id == versions.c.model_id)
    .where(versions.c.model_id == bindparam("model_id"))
    .order_by(versions.c.number.desc())
    .limit(1)
)
"""The id, number and model name of the model's latest version: all a new version's parent
needs, without the rest of the row."""


def resolve_id(connection: Connection, version_id: str) -> Row[Any]:
    """The version row with this id."""
    row = connection.execute(_BY_ID, {"version_id": version_id}).first()
    if row is None:
        raise VersionNotFound(version_id)
    return row


_BY_NAME_AND_NUMBER = version_select().where(
    models.c.name == bindparam("model_name"), versions.c.number == bindparam("number")
)
_BY_NAME_AND_ALIAS = (
    version_select()
    .join(aliases, and_(aliases.c.model_id == models.c.id, aliases.c.version_id == versions.c.id))
    .where(models.c.name == bindparam("model_name"), aliases.c.name == bindparam("alias"))
)
_LATEST_BY_NAME = (
    version_select()
    .where(models.c.name == bindparam("model_name"))
    .order_by(versions.c.number.desc())
    .limit(1)
)


def resolve(
    connection: Connection, reference: str | Reference, *, model: Row[Any] | None = None
) -> Row[Any]:
    """The version row a reference names (with the model's name as `name`); pass the model's
    row when the caller has it already, to save a query."""
    ref = Reference.parse(reference) if isinstance(reference, str) else reference
    if ref.number is not None and ref.number > INT32_MAX:
        raise InvalidReference(str(ref), expected=f"a version number up to {INT32_MAX}")
    if model is None or model.name != ref.name:
        row = _resolve_directly(connection, ref)
        if row is not None:
            return row
        model = model_row(connection, ref.name)  # not found: the steps below say what is missing
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


def _resolve_directly(connection: Connection, ref: Reference) -> Row[Any] | None:
    # One query instead of one per step (model, alias, version): each step is a round trip
    # on PostgreSQL. None also when the reference names nothing; the caller then finds out why.
    name = {"model_name": ref.name}
    if ref.number is not None:
        return connection.execute(_BY_NAME_AND_NUMBER, {**name, "number": ref.number}).first()
    if ref.alias is None:
        return connection.execute(_LATEST_BY_NAME, name).first()
    if ref.back == 0:
        return connection.execute(_BY_NAME_AND_ALIAS, {**name, "alias": ref.alias}).first()
    return None


def alias_target(connection: Connection, model_id: str, alias: str, *, back: int, ref: str) -> str:
    """The version an alias points at now (`back=0`) or `back` moves ago."""
    if back == 0:
        target = connection.execute(
            select(aliases.c.version_id).where(
                aliases.c.model_id == model_id, aliases.c.name == alias
            )
        ).scalar()
        if target is None:
            known = connection.execute(select(aliases.c.name).where(aliases.c.model_id == model_id))
            raise VersionNotFound(
                ref, detail=f"no alias {alias!r}" + did_you_mean(alias, known.scalars())
            )
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


def to_version(row: Row[Any]) -> ModelVersion:
    """A `ModelVersion` record from a row of `version_select()`."""
    return to_versions([row])[0]


def to_versions(rows: Sequence[Row[Any]]) -> list[ModelVersion]:
    """Records for rows of `version_select()` (or any select of the same columns)."""
    if not rows:
        return []
    fields = rows[0]._fields  # the same for every row; Row._asdict() would look them up each time
    validate = ModelVersion.model_validate
    records = []
    for row in rows:
        values = dict(zip(fields, row, strict=True))
        values["parents"] = _parents(values.pop("parent_refs"))
        values["created_at"] = utc(row.created_at)
        values["updated_at"] = utc(row.updated_at)
        records.append(validate(values))
    return records


def _parents(refs: str | None) -> list[str]:
    if not refs:
        return []
    pairs = (ref.split(":", 1) for ref in refs.split(","))
    return [ref for _, ref in sorted((int(position), ref) for position, ref in pairs)]


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
        raise VersionInUse(f"{row.name}:{row.number}", aliases=list(pointing))
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
    check_tag_key(key)
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
