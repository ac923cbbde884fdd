"""Registry routes: models, versions, aliases, lifecycle, gates, lineage, diff, search, audit.

Version references travel as the `ref` query parameter (`fraud:3`, `fraud@exp/lr-sweep~1`),
since aliases may contain `/`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from modelyard._scratch import scratch_folder
from modelyard._yard import Yard
from modelyard.api import _schemas as body
from modelyard.api._access import Access
from modelyard.api._acting import Caller
from modelyard.api._blobs import store_verified
from modelyard.api._responses import fast_json
from modelyard.diff import version_diff
from modelyard.errors import DigestMismatch, InvalidManifest, PayloadTooLarge
from modelyard.flavors import probe_stored
from modelyard.registry import (
    AliasEvent,
    AuditEvent,
    AuditHead,
    Gate,
    Lineage,
    Model,
    ModelVersion,
    Registry,
    SearchPage,
    Transition,
    VersionDiff,
)
from modelyard.security import Role
from modelyard.store import BlobStore, guard_writes, load_manifest

Ref = Annotated[str, Query(description="fraud, fraud:3, fraud@production or fraud@production~1")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="a key unique to this registration (a UUID): a retry with the same key "
        "returns the version already made; a different request with it answers 409",
    ),
]


def registry_routes(yard: Yard, access: Access, acting: Any) -> APIRouter:
    """Routes over `yard`'s registry; each request acts as its authenticated principal and
    needs the role its route names (see docs/registry.md, "Identity and roles")."""
    router = APIRouter(tags=["registry"])

    @router.get("/models")
    @fast_json()
    def list_models(caller: Caller = acting) -> list[Model]:
        found = caller.need_somewhere(Role.READER).registry.list_models()
        return found if caller.reads_everything() else [
            model for model in found if caller.may_read(model.name)
        ]  # fmt: skip

    @router.get("/models/{name}")
    @fast_json()
    def get_model(name: str, caller: Caller = acting) -> Model:
        return caller.need(Role.READER, name).registry.get_model(name)

    @router.patch("/models/{name}")
    @fast_json()
    def update_model(name: str, change: body.ModelUpdate, caller: Caller = acting) -> Model:
        return caller.need(Role.EDITOR, name).registry.update_model(
            name, description=change.description, tags=change.tags, delete_tags=change.delete_tags
        )

    @router.delete("/models/{name}", status_code=204)
    def delete_model(name: str, caller: Caller = acting) -> Response:
        caller.need(Role.ADMIN, name).registry.delete_model(name)
        return Response(status_code=204)

    @router.post("/models/{name}/versions", status_code=201)
    @fast_json(201)
    def create_version(
        name: str,
        new: body.VersionCreate,
        idempotency_key: IdempotencyKey = None,
        caller: Caller = acting,
    ) -> ModelVersion:
        registry = registering(caller, access, name, new)
        return register(yard, registry, name, new, idempotency_key=idempotency_key)

    @router.get("/models/{name}/versions")
    @fast_json()
    def list_versions(name: str, caller: Caller = acting) -> list[ModelVersion]:
        return caller.need(Role.READER, name).registry.list_versions(name)

    @router.get("/version")
    @fast_json()
    def get_version(ref: Ref, caller: Caller = acting) -> ModelVersion:
        return caller.need_ref(Role.READER, ref).registry.get_version(ref)

    @router.delete("/version", status_code=204)
    def delete_version(ref: Ref, caller: Caller = acting) -> Response:
        caller.need_ref(Role.ADMIN, ref).registry.delete_version(ref)
        return Response(status_code=204)

    @router.put("/version/tags")
    @fast_json()
    def set_tag(ref: Ref, key: str, tag: body.TagValue, caller: Caller = acting) -> ModelVersion:
        return caller.need_ref(Role.EDITOR, ref).registry.set_tag(ref, key, tag.value)

    @router.delete("/version/tags")
    @fast_json()
    def delete_tag(ref: Ref, key: str, caller: Caller = acting) -> ModelVersion:
        return caller.need_ref(Role.EDITOR, ref).registry.delete_tag(ref, key)

    @router.post("/versions/search")
    @fast_json()
    def search_versions(search: body.Search, caller: Caller = acting) -> SearchPage:
        return search_readable(caller, search)

    @router.put("/models/{name}/aliases/{alias:path}")
    @fast_json()
    def set_alias(
        name: str, alias: str, target: body.AliasTarget, caller: Caller = acting
    ) -> ModelVersion:
        registry = caller.need(access.alias_role(alias), name).registry
        return registry.set_alias(name, alias, target.version, reason=target.reason)

    @router.delete("/models/{name}/aliases/{alias:path}", status_code=204)
    def delete_alias(name: str, alias: str, caller: Caller = acting) -> Response:
        caller.need(access.alias_role(alias), name).registry.delete_alias(name, alias)
        return Response(status_code=204)

    @router.get("/models/{name}/alias-history")
    @fast_json()
    def alias_history(
        name: str, alias: str | None = None, caller: Caller = acting
    ) -> list[AliasEvent]:
        return caller.need(Role.READER, name).registry.alias_history(name, alias)

    @router.post("/models/{name}/rollback")
    @fast_json()
    def rollback(
        name: str, why: body.Reason, alias: str = "production", caller: Caller = acting
    ) -> ModelVersion:
        registry = caller.need(access.alias_role(alias), name).registry
        return registry.rollback(name, alias, reason=why.reason)

    @router.post("/version/transitions")
    @fast_json()
    def transition(ref: Ref, move: body.TransitionRequest, caller: Caller = acting) -> ModelVersion:
        registry = caller.need_ref(access.transition_role(move.state), ref).registry
        return registry.transition(
            ref, move.state, comment=move.comment, move_alias=move.move_alias
        )

    @router.get("/version/transitions")
    @fast_json()
    def transitions(ref: Ref, caller: Caller = acting) -> list[Transition]:
        return caller.need_ref(Role.READER, ref).registry.transitions(ref)

    @router.post("/version/approvals", status_code=204)
    def approve(ref: Ref, note: body.Comment, caller: Caller = acting) -> Response:
        caller.need_ref(Role.APPROVER, ref).registry.approve(ref, comment=note.comment)
        return Response(status_code=204)

    @router.post("/models/{name}/gates", status_code=201)
    @fast_json(201)
    def add_gate(name: str, gate: body.GateCreate, caller: Caller = acting) -> Gate:
        registry = caller.need(Role.ADMIN, name).registry
        return registry.add_gate(name, gate.kind, to_state=gate.to_state, **gate.config)

    @router.get("/models/{name}/gates")
    @fast_json()
    def gates(name: str, caller: Caller = acting) -> list[Gate]:
        return caller.need(Role.READER, name).registry.gates(name)

    @router.delete("/models/{name}/gates/{gate_id}", status_code=204)
    def remove_gate(name: str, gate_id: str, caller: Caller = acting) -> Response:
        caller.need(Role.ADMIN, name).registry.remove_gate(name, gate_id)
        return Response(status_code=204)

    @router.get("/version/lineage")
    @fast_json()
    def lineage(
        ref: Ref,
        depth: Annotated[
            int | None, Query(ge=1, description="generations each way, at most")
        ] = None,
        caller: Caller = acting,
    ) -> Lineage:
        return caller.need_ref(Role.READER, ref).registry.lineage(ref, depth=depth)

    @router.get("/diff")
    @fast_json()
    def diff(a: str, b: str, caller: Caller = acting) -> VersionDiff:
        caller.need_ref(Role.READER, a).need_ref(Role.READER, b)
        return version_diff(caller.registry, yard.store, a, b)

    @router.get("/audit")
    @fast_json()
    def audit_log(
        target: str | None = None, limit: int | None = None, caller: Caller = acting
    ) -> list[AuditEvent]:
        return readable_events(caller, target=target, limit=limit)

    @router.get("/audit/verify")
    def verify_audit(
        head: Annotated[str | None, Query(description="SEQ:HASH recorded earlier")] = None,
        caller: Caller = acting,
    ) -> dict[str, Any]:
        check = caller.need(Role.READER).registry.verify_audit(head=head)
        return {"ok": check.ok, "checked": check.checked, "bad_seq": check.bad_seq,
                "reason": check.reason, "unkeyed": check.unkeyed}  # fmt: skip

    @router.get("/audit/head")
    @fast_json()
    def audit_head(caller: Caller = acting) -> AuditHead:
        """Where the audit chain ends: record it, then pass it to /audit/verify later."""
        return caller.need(Role.READER).registry.audit_head()

    return router


def registering(caller: Caller, access: Access, name: str, new: body.VersionCreate) -> Registry:
    """The registry to register `new` with, once the caller may: editor on the model, and
    what moving the alias takes when the version is committed on one (`production` too)."""
    caller.need(Role.EDITOR, name)
    if new.alias is not None:
        caller.need(access.alias_role(new.alias), name)
    return caller.registry


def search_readable(caller: Caller, search: body.Search) -> SearchPage:
    """A search page holding only versions of models the caller may read (a page may then
    hold fewer than `limit`; its token still leads to the next)."""
    page = caller.need_somewhere(Role.READER).registry.search_versions(**search.model_dump())
    if caller.reads_everything():
        return page
    readable = [version for version in page.versions if caller.may_read(version.name)]
    return page.model_copy(update={"versions": readable})


def readable_events(caller: Caller, *, target: str | None, limit: int | None) -> list[AuditEvent]:
    """Audit events the caller may read: about one model (reader on it), or all of them
    (reader on every model; otherwise only events about models it may read)."""
    if target is not None:
        model = target.partition(":")[0]
        caller.need(Role.READER, None if model.startswith("@") else model)
        return caller.registry.audit_log(target=target, limit=limit)
    events = caller.need_somewhere(Role.READER).registry.audit_log(limit=limit)
    if caller.reads_everything():
        return events
    return [
        event
        for event in events
        if not event.target.startswith("@") and caller.may_read(event.target.partition(":")[0])
    ]


def register(
    yard: Yard,
    registry: Registry,
    name: str,
    new: body.VersionCreate,
    *,
    idempotency_key: str | None = None,
) -> ModelVersion:
    """Store the blobs sent along (at most `server_max_inline_bytes` of them), check the manifest
    is here, then register the version (once per `idempotency_key`)."""
    inline = sum(_decoded_size(encoded) for encoded in (new.blobs or {}).values())
    if inline > yard.settings.server_max_inline_bytes:
        raise PayloadTooLarge(
            yard.settings.server_max_inline_bytes,
            what=f"the blobs sent inline with this registration ({inline} bytes)",
            hint="upload large blobs with PUT /api/v1/blobs/{digest} first",
        )
    # Garbage collection waits until the version is committed; blobs the client found already
    # stored (and did not send) are checked again under that guard, since a collection may have
    # run between its check and this request.
    with guard_writes(yard.store):
        for digest, encoded in (new.blobs or {}).items():
            store_verified(yard.store, digest, _decode(digest, encoded))
        if new.manifest_digest is not None:
            _check_stored(yard.store, new.manifest_digest)
        # A LightGBM/XGBoost file that would crash a process natively is refused (in a child).
        with scratch_folder(yard.settings.home, prefix="probe") as scratch:
            probe_stored(yard.store, new.manifest_digest, flavor=new.flavor,
                         timeout=yard.settings.probe_timeout_seconds, scratch=scratch)  # fmt: skip
        fields = new.model_dump(exclude={"blobs"})
        return registry.create_version(name, **fields, idempotency_key=idempotency_key)


def _check_stored(store: BlobStore, manifest_digest: str) -> None:
    if not store.exists(manifest_digest):
        raise InvalidManifest(
            f"manifest {manifest_digest} is not stored on this server; upload the "
            "model's blobs (and its manifest, last) before registering it"
        )
    missing = [d for d in load_manifest(store, manifest_digest).blob_digests()
               if not store.exists(d)]  # fmt: skip
    if missing:
        raise InvalidManifest(
            f"manifest {manifest_digest} names {len(missing)} blob(s) this server does not "
            f"hold ({', '.join(missing[:3])}); upload them and register again"
        )


def _decoded_size(encoded: str) -> int:
    """How many bytes base64 text decodes to, without decoding it."""
    return len(encoded) // 4 * 3 - len(encoded[-2:]) + len(encoded[-2:].rstrip("="))


def _decode(digest: str, encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
        raise DigestMismatch(digest, actual="(not valid base64)") from None
