"""`Registry`: the registry's operations over one database, each change in its own transaction."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from modelyard.errors import ConfigurationError, InvalidReference, NotFound
from modelyard.registry import (
    _aliases,
    _audit,
    _idempotency,
    _leases,
    _lifecycle,
    _model_text,
    _numbers,
    _search,
    _versions,
)
from modelyard.registry._database import Database
from modelyard.registry._diff import VersionDiff
from modelyard.registry._leases import Lease
from modelyard.registry._records import (
    AliasEvent,
    Gate,
    Model,
    ModelVersion,
    SearchPage,
    State,
    Transition,
)
from modelyard.registry._registry_runs import RunsAndAudit
from modelyard.registry._tables import models, versions


class Registry(RunsAndAudit):
    """Models, versions, aliases, lifecycle and audit over an open `Database`; it implements
    `RegistryAPI` (runs, lineage, diff and audit are in `RunsAndAudit`).

    Every change is one transaction (a read too on SQLite; on PostgreSQL reads run in
    autocommit, see `Database.read`); `actor` is recorded as who did it.

        >>> registry = Registry(database, actor="ana")
        >>> version = registry.create_version("fraud", params={"lr": "0.1"})
        >>> registry.set_alias("fraud", "production", version.ref)
    """

    def __init__(
        self,
        database: Database,
        *,
        actor: str,
        signatures: Callable[[ModelVersion], str] | None = None,
        differ: Callable[[str, str], VersionDiff] | None = None,
    ) -> None:
        self.database = database
        self.actor = actor
        self.signatures = signatures  # checks `signed` gates: why a version fails, '' if not
        self.differ = differ  # the full diff (files, tensors), wired by who holds the store

    # models -----------------------------------------------------------------------------------

    def get_model(self, name: str) -> Model:
        """The model called `name`."""
        with self.database.read() as connection:
            return _versions.to_model(connection, _versions.model_row(connection, name))

    def list_models(self) -> list[Model]:
        """Every model, by name."""
        with self.database.read() as connection:
            rows = connection.execute(select(models).order_by(models.c.name)).all()
            return [_versions.to_model(connection, row) for row in rows]

    def delete_model(self, name: str) -> None:
        """Delete a model with all its versions and aliases (the audit log keeps the record)."""
        with self.database.write() as connection:
            row = _versions.model_row(connection, name, lock=True)
            connection.execute(models.delete().where(models.c.id == row.id))
            _audit.append(
                connection,
                actor=self.actor,
                action="model.delete",
                target=name,
                before={"versions": row.last_version},
            )

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
        delete_tags: Sequence[str] = (),
    ) -> Model:
        """Change the model's own description (None keeps it) and tags: set `tags`, remove
        `delete_tags` (keys it does not have are ignored); other tags stay.

        >>> registry.update_model("fraud", description="Card fraud", tags={"team": "risk"})
        """
        with self.database.write() as connection:
            row = _versions.model_row(connection, name, lock=True)
            _model_text.update_model(
                connection,
                row,
                description=description,
                tags={str(k): str(v) for k, v in (tags or {}).items()},
                delete_tags=_keys(delete_tags),
                actor=self.actor,
            )
            return _versions.to_model(connection, _versions.model_row(connection, name))

    # versions ---------------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        *,
        manifest_digest: str | None = None,
        flavor: str | None = None,
        signature: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        parents: Sequence[str] | None = None,
        description: str = "",
        run_id: str | None = None,
        alias: str | None = None,
        relation: str | None = None,
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Register a new version of `name` (creating the model on first use).

        Its parents are `parents` if given, else the version `alias` points at, else the
        model's latest version: a commit on the branch the caller is on. `relation` names how it
        was made from them in the lineage (`quantize`, `prune`, …; default `parent`, or `merge`
        for two parents).

        With an `idempotency_key`, a retry of the same request with the same key returns the
        version the first one made (a lost answer never registers twice); the same key with a
        different request raises `IdempotencyConflict`.
        """
        if relation is not None and not _RELATION.fullmatch(relation):
            raise ConfigurationError(
                f"relation {relation!r} must be 1-32 lowercase letters, digits, '-' or '_', "
                "starting with a letter"
            )
        _numbers.json_numbers([params, signature], what="a version's params and signature")
        clean_params = {str(k): str(v) for k, v in (params or {}).items()}
        clean_metrics = _numbers.finite_values(metrics or {}, what="metric")
        clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        request = None
        if idempotency_key is not None:
            _idempotency.check_key(idempotency_key)
            request = _idempotency.request_digest(
                {"manifest_digest": manifest_digest, "flavor": flavor, "signature": signature,
                 "params": clean_params, "metrics": clean_metrics, "tags": clean_tags,
                 "parents": parents, "description": description, "run_id": run_id,
                 "alias": alias, "relation": relation}
            )  # fmt: skip
        try:
            return self._create_version(
                name, parents=parents, manifest_digest=manifest_digest, flavor=flavor,
                signature=signature, params=clean_params, metrics=clean_metrics, tags=clean_tags,
                description=description, run_id=run_id, alias=alias, relation=relation,
                key=idempotency_key, request=request,
            )  # fmt: skip
        except SQLIntegrityError:
            if idempotency_key is None or request is None:
                raise
            # Another request with this key committed while this one ran: answer with its version.
            with self.database.read() as connection:
                made = _idempotency.replayed(
                    connection, name=name, key=idempotency_key, digest=request
                )
                if made is None:
                    raise
                return _versions.to_version(_versions.resolve_id(connection, made))

    def _create_version(
        self,
        name: str,
        *,
        parents: Sequence[str] | None,
        manifest_digest: str | None,
        flavor: str | None,
        signature: Mapping[str, Any] | None,
        params: dict[str, str],
        metrics: dict[str, float],
        tags: dict[str, str],
        description: str,
        run_id: str | None,
        alias: str | None,
        relation: str | None,
        key: str | None,
        request: str | None,
    ) -> ModelVersion:
        with self.database.write() as connection:
            if key is not None and request is not None:
                made = _idempotency.replayed(connection, name=name, key=key, digest=request)
                if made is not None:  # a retry: nothing is written
                    return _versions.to_version(_versions.resolve_id(connection, made))
            model = _versions.take_number(connection, name, actor=self.actor)
            parent_rows = self._parents(connection, model, parents, alias)
            values = _versions.insert_version(
                connection,
                model=model,
                number=model.last_version,
                parents=[row.id for row in parent_rows],
                manifest_digest=manifest_digest,
                flavor=flavor,
                signature=signature,
                params=params,
                metrics=metrics,
                tags=tags,
                description=description,
                run_id=run_id,
                actor=self.actor,
                relation=relation,
            )
            ref = f"{name}:{values['number']}"
            _audit.append(
                connection,
                actor=self.actor,
                action="version.create",
                target=ref,
                after={"manifest_digest": manifest_digest, "parents": len(parent_rows)},
                at=values["created_at"],
            )
            if alias is not None:
                row = _versions.resolve_id(connection, values["id"])
                _aliases.move(connection, model=model, alias=alias, version=row, actor=self.actor)
            if key is not None and request is not None:
                _idempotency.remember(
                    connection, model_id=model.id, key=key, digest=request, version=values
                )
            parent_refs = [f"{row.name}:{row.number}" for row in parent_rows]
            return ModelVersion(name=name, parents=parent_refs, **values)

    def _parents(
        self, connection: Connection, model: Any, parents: Sequence[str] | None, alias: str | None
    ) -> list[Any]:
        if parents is not None:
            return [_versions.resolve(connection, ref) for ref in parents]
        if alias is not None:
            target = _aliases.current_target(connection, model.id, alias)
            if target is not None:
                return [_versions.resolve_id(connection, target)]
        if model.last_version == 1:  # the number just taken is the first
            return []
        latest = connection.execute(_versions.LATEST_REF, {"model_id": model.id}).first()
        return [latest] if latest is not None else []

    def get_version(self, ref: str) -> ModelVersion:
        """The version a reference names: `fraud`, `fraud:3`, `fraud@prod`, `fraud@prod~1`."""
        with self.database.read() as connection:
            return _versions.to_version(_versions.resolve(connection, ref))

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, newest first."""
        with self.database.read() as connection:
            model = _versions.model_row(connection, name)
            rows = connection.execute(
                _versions.version_select()
                .where(versions.c.model_id == model.id)
                .order_by(versions.c.number.desc())
            ).all()
            return _versions.to_versions(rows)

    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> SearchPage:
        """Versions matching a filter, a page at a time.

        >>> page = registry.search_versions("metrics.auc >= 0.9 and tags.team = 'risk'",
        ...                                 order_by="metrics.auc desc", limit=20)
        >>> more = registry.search_versions(..., page_token=page.next_page_token)
        """
        key = self.database.page_key
        query = _search.search_query(
            filter, order_by=order_by, limit=limit, page_token=page_token, key=key
        )
        offset = _search.page_offset(page_token, filter, order_by, key=key)
        with self.database.read() as connection:
            rows = connection.execute(query).all()
            found = _versions.to_versions(rows[:limit])
        token = None
        if len(rows) > limit:
            token = _search.next_page_token(filter, order_by, offset=offset + limit, key=key)
        return SearchPage(versions=found, next_page_token=token)

    def delete_version(self, ref: str) -> None:
        """Delete a version that no alias points at."""
        with self.database.write() as connection:
            _versions.delete_version(
                connection, _versions.resolve(connection, ref), actor=self.actor
            )

    def set_tag(self, ref: str, key: str, value: Any) -> ModelVersion:
        """Set a tag on a version."""
        return self._tag(ref, key, str(value))

    def delete_tag(self, ref: str, key: str) -> ModelVersion:
        """Remove a tag from a version."""
        return self._tag(ref, key, None)

    def _tag(self, ref: str, key: str, value: str | None) -> ModelVersion:
        with self.database.write() as connection:
            row = _versions.resolve(connection, ref)
            _versions.set_version_tag(connection, row, key, value, actor=self.actor)
            return _versions.to_version(_versions.resolve_id(connection, row.id))

    # aliases ----------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, ref: str, *, reason: str = "") -> ModelVersion:
        """Point `name@alias` at the version `ref` names."""
        with self.database.write() as connection:
            model = _versions.model_row(connection, name, lock=True)
            row = _versions.resolve(connection, ref, model=model if ref.startswith(name) else None)
            if row.model_id != model.id:
                raise InvalidReference(ref, expected=f"a version of model {name!r}")
            _aliases.move(
                connection, model=model, alias=alias, version=row, actor=self.actor, reason=reason
            )
            return _versions.to_version(row)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove `name@alias`."""
        with self.database.write() as connection:
            model = _versions.model_row(connection, name, lock=True)
            _aliases.move(connection, model=model, alias=alias, version=None, actor=self.actor)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Moves of the model's aliases, newest first."""
        with self.database.read() as connection:
            model = _versions.model_row(connection, name)
            return _aliases.history(connection, model=model, alias=alias)

    def rollback(self, name: str, alias: str = "production", *, reason: str = "") -> ModelVersion:
        """Move `name@alias` back to the version it pointed at before (again: further back)."""
        with self.database.write() as connection:
            model = _versions.model_row(connection, name, lock=True)
            target = _aliases.rollback_target(connection, model=model, alias=alias)
            if target is None:
                raise NotFound(f"{name}@{alias} has no earlier version to roll back to")
            row = _versions.resolve_id(connection, target)
            _aliases.move(
                connection,
                model=model,
                alias=alias,
                version=row,
                actor=self.actor,
                reason=reason or "rollback",
                kind="rollback",
            )
            return _versions.to_version(row)

    # lifecycle --------------------------------------------------------------------------------

    def transition(
        self, ref: str, state: State | str, *, comment: str = "", move_alias: bool = True
    ) -> ModelVersion:
        """Move a version to `state` if allowed and every gate passes; entering production also
        points the `production` alias at it unless `move_alias=False`."""
        wanted = _state(state)
        with self.database.write() as connection:
            row = _versions.resolve(connection, ref)
            model = _versions.model_row(connection, row.name, lock=True)
            _lifecycle.transition(
                connection,
                model=model,
                version=row,
                to_state=wanted,
                actor=self.actor,
                comment=comment,
                signed=self._signed_check(row),
            )
            if wanted == State.PRODUCTION and move_alias:
                _aliases.move(
                    connection,
                    model=model,
                    alias="production",
                    version=row,
                    actor=self.actor,
                    reason=comment or "promoted",
                )
            return _versions.to_version(_versions.resolve_id(connection, row.id))

    def _signed_check(self, row: Any) -> Callable[[], str] | None:
        check = self.signatures
        return None if check is None else lambda: check(_versions.to_version(row))

    def transitions(self, ref: str) -> list[Transition]:
        """The version's state changes, oldest first."""
        with self.database.read() as connection:
            return _lifecycle.transitions_of(connection, version=_versions.resolve(connection, ref))

    def approve(self, ref: str, *, comment: str = "") -> None:
        """Approve a version (as someone other than its creator)."""
        with self.database.write() as connection:
            row = _versions.resolve(connection, ref)
            _lifecycle.approve(connection, version=row, actor=self.actor, comment=comment)

    def add_gate(
        self, name: str, kind: str, *, to_state: State | str = State.PRODUCTION, **config: Any
    ) -> Gate:
        """Require something before versions of `name` enter `to_state`.

        >>> registry.add_gate("fraud", "metric", metric="auc", op=">=", value=0.9)
        >>> registry.add_gate("fraud", "approval", count=1)
        """
        _numbers.json_numbers(config, what="a gate's settings")
        with self.database.write() as connection:
            model = _versions.ensure_model(connection, name, actor=self.actor)
            return _lifecycle.add_gate(
                connection,
                model=model,
                to_state=_state(to_state),
                kind=kind,
                config=config,
                actor=self.actor,
            )

    def gates(self, name: str) -> list[Gate]:
        """The model's gates."""
        with self.database.read() as connection:
            return _lifecycle.list_gates(connection, model=_versions.model_row(connection, name))

    def remove_gate(self, name: str, gate_id: str) -> None:
        """Delete one of the model's gates."""
        with self.database.write() as connection:
            model = _versions.model_row(connection, name, lock=True)
            _lifecycle.remove_gate(connection, model=model, gate_id=gate_id, actor=self.actor)

    # leases -----------------------------------------------------------------------------------

    def acquire_lease(self, name: str, *, holder: str, seconds: float) -> Lease:
        """Take the lease `name` for `seconds`, or renew it if `holder` holds it; the lease as
        it stands after: held by someone else while their lease runs (not audited: renewals
        come every few seconds).

        >>> registry.acquire_lease("alerts:3f9a", holder="web-1:4242:9c1e", seconds=90).holder
        'web-1:4242:9c1e'
        """
        return _leases.acquire(self.database, name, holder=holder, seconds=seconds)

    def release_lease(self, name: str, *, holder: str) -> None:
        """Give the lease `name` up if `holder` holds it, so another can take it at once."""
        _leases.release(self.database, name, holder=holder)


def _keys(keys: Sequence[str]) -> list[str]:
    """Tag keys; one key given as a plain string is one key, not its characters."""
    return [keys] if isinstance(keys, str) else [str(key) for key in keys]


_RELATION = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _state(state: State | str) -> State:
    try:
        return State(state)
    except ValueError:
        raise ConfigurationError(
            f"unknown state {state!r}; states are {', '.join(s.value for s in State)}"
        ) from None
