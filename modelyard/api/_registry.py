"""Registry routes: models, versions, aliases, lifecycle, gates, lineage, diff, search, audit.

Version references travel as the `ref` query parameter (`fraud:3`, `fraud@exp/lr-sweep~1`),
since aliases may contain `/`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from modelyard._yard import Yard
from modelyard.api import _schemas as body
from modelyard.api._acting import User, acting_registry
from modelyard.api._blobs import store_verified
from modelyard.api._responses import fast_json
from modelyard.errors import DigestMismatch, InvalidManifest
from modelyard.flavors import version_diff
from modelyard.registry import (
    AliasEvent,
    AuditEvent,
    Gate,
    Lineage,
    Model,
    ModelVersion,
    Registry,
    SearchPage,
    Transition,
    VersionDiff,
)

Ref = Annotated[str, Query(description="fraud, fraud:3, fraud@production or fraud@production~1")]


def registry_routes(yard: Yard) -> APIRouter:
    """Routes over `yard`'s registry; each request acts as its `X-Modelyard-User`."""
    router = APIRouter(tags=["registry"])

    def registry(user: str | None) -> Registry:
        return acting_registry(yard, user)

    @router.get("/models")
    @fast_json()
    def list_models(user: User = None) -> list[Model]:
        return registry(user).list_models()

    @router.get("/models/{name}")
    @fast_json()
    def get_model(name: str, user: User = None) -> Model:
        return registry(user).get_model(name)

    @router.delete("/models/{name}", status_code=204)
    def delete_model(name: str, user: User = None) -> Response:
        registry(user).delete_model(name)
        return Response(status_code=204)

    @router.post("/models/{name}/versions", status_code=201)
    @fast_json(201)
    def create_version(name: str, new: body.VersionCreate, user: User = None) -> ModelVersion:
        return register(yard, registry(user), name, new)

    @router.get("/models/{name}/versions")
    @fast_json()
    def list_versions(name: str, user: User = None) -> list[ModelVersion]:
        return registry(user).list_versions(name)

    @router.get("/version")
    @fast_json()
    def get_version(ref: Ref, user: User = None) -> ModelVersion:
        return registry(user).get_version(ref)

    @router.delete("/version", status_code=204)
    def delete_version(ref: Ref, user: User = None) -> Response:
        registry(user).delete_version(ref)
        return Response(status_code=204)

    @router.put("/version/tags")
    @fast_json()
    def set_tag(ref: Ref, key: str, tag: body.TagValue, user: User = None) -> ModelVersion:
        return registry(user).set_tag(ref, key, tag.value)

    @router.delete("/version/tags")
    @fast_json()
    def delete_tag(ref: Ref, key: str, user: User = None) -> ModelVersion:
        return registry(user).delete_tag(ref, key)

    @router.post("/versions/search")
    @fast_json()
    def search_versions(search: body.Search, user: User = None) -> SearchPage:
        return registry(user).search_versions(**search.model_dump())

    @router.put("/models/{name}/aliases/{alias:path}")
    @fast_json()
    def set_alias(
        name: str, alias: str, target: body.AliasTarget, user: User = None
    ) -> ModelVersion:
        return registry(user).set_alias(name, alias, target.version, reason=target.reason)

    @router.delete("/models/{name}/aliases/{alias:path}", status_code=204)
    def delete_alias(name: str, alias: str, user: User = None) -> Response:
        registry(user).delete_alias(name, alias)
        return Response(status_code=204)

    @router.get("/models/{name}/alias-history")
    @fast_json()
    def alias_history(name: str, alias: str | None = None, user: User = None) -> list[AliasEvent]:
        return registry(user).alias_history(name, alias)

    @router.post("/models/{name}/rollback")
    @fast_json()
    def rollback(
        name: str, why: body.Reason, alias: str = "production", user: User = None
    ) -> ModelVersion:
        return registry(user).rollback(name, alias, reason=why.reason)

    @router.post("/version/transitions")
    @fast_json()
    def transition(ref: Ref, move: body.TransitionRequest, user: User = None) -> ModelVersion:
        return registry(user).transition(
            ref, move.state, comment=move.comment, move_alias=move.move_alias
        )

    @router.get("/version/transitions")
    @fast_json()
    def transitions(ref: Ref, user: User = None) -> list[Transition]:
        return registry(user).transitions(ref)

    @router.post("/version/approvals", status_code=204)
    def approve(ref: Ref, note: body.Comment, user: User = None) -> Response:
        registry(user).approve(ref, comment=note.comment)
        return Response(status_code=204)

    @router.post("/models/{name}/gates", status_code=201)
    @fast_json(201)
    def add_gate(name: str, gate: body.GateCreate, user: User = None) -> Gate:
        return registry(user).add_gate(name, gate.kind, to_state=gate.to_state, **gate.config)

    @router.get("/models/{name}/gates")
    @fast_json()
    def gates(name: str, user: User = None) -> list[Gate]:
        return registry(user).gates(name)

    @router.delete("/models/{name}/gates/{gate_id}", status_code=204)
    def remove_gate(name: str, gate_id: str, user: User = None) -> Response:
        registry(user).remove_gate(name, gate_id)
        return Response(status_code=204)

    @router.get("/version/lineage")
    @fast_json()
    def lineage(ref: Ref, user: User = None) -> Lineage:
        return registry(user).lineage(ref)

    @router.get("/diff")
    @fast_json()
    def diff(a: str, b: str, user: User = None) -> VersionDiff:
        return version_diff(registry(user), yard.store, a, b)

    @router.get("/audit")
    @fast_json()
    def audit_log(
        target: str | None = None, limit: int | None = None, user: User = None
    ) -> list[AuditEvent]:
        return registry(user).audit_log(target=target, limit=limit)

    @router.get("/audit/verify")
    def verify_audit(user: User = None) -> dict[str, Any]:
        check = registry(user).verify_audit()
        return {"ok": check.ok, "checked": check.checked, "bad_seq": check.bad_seq,
                "reason": check.reason}  # fmt: skip

    return router


def register(yard: Yard, registry: Registry, name: str, new: body.VersionCreate) -> ModelVersion:
    """Store the blobs sent along, check the manifest is here, then register the version."""
    for digest, encoded in (new.blobs or {}).items():
        store_verified(yard.store, digest, _decode(digest, encoded))
    if new.manifest_digest is not None and not yard.store.exists(new.manifest_digest):
        raise InvalidManifest(
            f"manifest {new.manifest_digest} is not stored on this server; upload the "
            "model's blobs (and its manifest, last) before registering it"
        )
    return registry.create_version(name, **new.model_dump(exclude={"blobs"}))


def _decode(digest: str, encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise DigestMismatch(digest, actual="(not valid base64)") from None
