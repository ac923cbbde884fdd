"""The HTTP side of `Yard(url=…)`: the registry and the blob store of a `modelyard server`.

`HttpRegistry` implements `RegistryAPI`, as `Registry` does, so `Yard` works the same over
either (mypy checks both against the Protocol; tests/registry/test_contract.py runs the same
tests against both); errors come back as the same typed `ModelyardError` subclasses, rebuilt
from the `code` of the server's `{"error", "code", "details"}` (never from a class name, so
renaming a class changes nothing).
"""

from __future__ import annotations

import base64
import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from modelyard.errors import (
    ModelyardError,
    PayloadTooLarge,
    RegistryUnavailable,
    class_for,
)
from modelyard.registry import (
    AliasEvent,
    AuditEvent,
    AuditHead,
    ChainCheck,
    Gate,
    Lease,
    Lineage,
    MetricPoint,
    Model,
    ModelVersion,
    Registry,
    RegistryAPI,
    Run,
    SearchPage,
    State,
    Transition,
    VersionDiff,
)
from modelyard.store import (
    BlobInfo,
    BlobSource,
    BlobStore,
    UniqueBytes,
    digest_bytes,
    iter_source,
)

R = TypeVar("R", bound=BaseModel)

INLINE_BLOB = 1 << 20
"""Blobs up to this size are sent without asking whether the server has them."""

INLINE_BUDGET = 8 << 20
"""At most this many bytes of small blobs ride along with one registration."""


log = logging.getLogger("modelyard.client")

_TLS_HINT = (
    "; if the server's certificate comes from your own CA, point MODELYARD_TLS_CA_FILE at it"
)


@functools.cache
def _list_of(record: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(list[record])  # type: ignore[valid-type]


def raise_for(response: httpx.Response) -> None:
    """Raise the typed error a failed response describes."""
    if response.is_success:
        return
    try:
        payload = response.json()
        message, code = str(payload["error"]), str(payload.get("code", ""))
        details = payload.get("details") or {}
        details = dict(details) if isinstance(details, dict) else {}
    except (ValueError, KeyError, TypeError, AttributeError):
        message, code, details = f"HTTP {response.status_code}: {response.text[:200]}", "", {}
    cls = class_for(code)
    # Built without `__init__`: the message is the server's, word for word, and each class's
    # own arguments come back as the attributes in `details`.
    error = cls.__new__(cls)
    ModelyardError.__init__(error, message)
    for key, value in details.items() if cls is not ModelyardError else ():
        if isinstance(key, str) and not key.startswith("_") and key not in ("message", "code"):
            setattr(error, key, value)
    error.status_code = response.status_code
    raise error


class HttpRegistry:
    """The registry of a `modelyard server`: `RegistryAPI` over HTTP."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        actor: str,
        headers: Mapping[str, str] | None = None,
        retries: int = 3,
        backoff: float = 0.25,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.owns_client = owns_client  # an injected client is closed by whoever made it
        self._staged = threading.local()  # the blobs held back by `staging`, per thread
        self.actor = actor
        self.headers = dict(headers or {})  # `Authorization: Bearer …` when there is a token
        self.retries = retries  # for requests an idempotency key makes safe to repeat
        self.backoff = backoff

    def _send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        retries: int = 0,
        **options: Any,
    ) -> httpx.Response:
        """Send a request; with `retries`, send it again after a dropped connection or a 5xx
        answer (only for a request that is safe to repeat), waiting longer each time."""
        sent = {**self.headers, **headers} if headers else self.headers
        attempt = 0
        while True:
            try:
                response = self.client.request(method, path, headers=sent, **options)
            except httpx.TransportError as error:
                tls = "CERTIFICATE_VERIFY_FAILED" in str(error)
                if attempt < retries and not tls:
                    attempt = self._pause(attempt, retries, f"{type(error).__name__}: {error}")
                    continue
                raise RegistryUnavailable(
                    f"cannot reach the modelyard server at {self.client.base_url}: {error}"
                    + (_TLS_HINT if tls else "")
                ) from None
            if response.status_code >= 500 and attempt < retries:
                attempt = self._pause(attempt, retries, f"HTTP {response.status_code}")
                continue
            raise_for(response)
            return response

    def _pause(self, attempt: int, retries: int, why: str) -> int:
        delay = min(self.backoff * 2**attempt, 5.0) * random.uniform(0.5, 1.0)
        log.warning("the modelyard server at %s failed (%s); retrying in %.1f s (%d of %d)",
                    self.client.base_url, why, delay, attempt + 1, retries)  # fmt: skip
        time.sleep(delay)
        return attempt + 1

    def _one(self, record: type[R], method: str, path: str, **options: Any) -> R:
        return record.model_validate_json(self._send(method, path, **options).content)

    def _many(self, record: type[R], method: str, path: str, **options: Any) -> list[R]:
        content = self._send(method, path, **options).content
        return _list_of(record).validate_json(content)  # type: ignore[no-any-return]

    def get_model(self, name: str) -> Model:
        return self._one(Model, "GET", f"/models/{name}")

    def list_models(self) -> list[Model]:
        return self._many(Model, "GET", "/models")

    def delete_model(self, name: str) -> None:
        self._send("DELETE", f"/models/{name}")

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
        delete_tags: Sequence[str] = (),
    ) -> Model:
        keys = [delete_tags] if isinstance(delete_tags, str) else list(delete_tags)
        body = {"description": description, "delete_tags": keys,
                "tags": {str(k): str(v) for k, v in (tags or {}).items()}}  # fmt: skip
        return self._one(Model, "PATCH", f"/models/{name}", json=body)

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
        fields = _plain({
            "manifest_digest": manifest_digest, "flavor": flavor, "signature": signature,
            "params": params, "metrics": metrics, "tags": tags, "parents": parents,
            "description": description, "run_id": run_id, "alias": alias, "relation": relation,
        })  # fmt: skip
        pending: PendingBlobs | None = getattr(self._staged, "pending", None)
        blobs = pending.encoded() if pending is not None else {}
        # One key per logical registration, made here unless the caller brings its own: a
        # retry after a lost answer then returns the version the first attempt made.
        path = f"/models/{name}/versions"
        once = {"headers": {"Idempotency-Key": idempotency_key or str(uuid.uuid4())},
                "retries": self.retries}  # fmt: skip
        try:
            body = {**fields, "blobs": blobs} if blobs else fields
            return self._one(ModelVersion, "POST", path, json=body, **once)
        except PayloadTooLarge:
            if not blobs:
                raise
        # The server takes fewer inline bytes than this client sends: upload them first.
        for digest, encoded in blobs.items():
            self._send("PUT", f"/blobs/{digest}", content=base64.b64decode(encoded))
        return self._one(ModelVersion, "POST", path, json=fields, **once)

    def get_version(self, ref: str) -> ModelVersion:
        # The query written out: httpx parses the URL again for each `params` merge, and this
        # is the call a deploy makes most (resolving an alias).
        return self._one(ModelVersion, "GET", f"/version?ref={quote(ref, safe='')}")

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self._many(ModelVersion, "GET", f"/models/{name}/versions")

    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> SearchPage:
        body = {"filter": filter, "order_by": order_by, "limit": limit, "page_token": page_token}
        return self._one(SearchPage, "POST", "/versions/search", json=body)

    def delete_version(self, ref: str) -> None:
        self._send("DELETE", "/version", params={"ref": ref})

    def set_tag(self, ref: str, key: str, value: Any) -> ModelVersion:
        params = {"ref": ref, "key": key}
        return self._one(
            ModelVersion, "PUT", "/version/tags", params=params, json={"value": str(value)}
        )

    def delete_tag(self, ref: str, key: str) -> ModelVersion:
        return self._one(ModelVersion, "DELETE", "/version/tags", params={"ref": ref, "key": key})

    def set_alias(self, name: str, alias: str, ref: str, *, reason: str = "") -> ModelVersion:
        body = {"version": ref, "reason": reason}
        return self._one(ModelVersion, "PUT", f"/models/{name}/aliases/{alias}", json=body)

    def delete_alias(self, name: str, alias: str) -> None:
        self._send("DELETE", f"/models/{name}/aliases/{alias}")

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        params = {"alias": alias} if alias else {}
        return self._many(AliasEvent, "GET", f"/models/{name}/alias-history", params=params)

    def rollback(self, name: str, alias: str = "production", *, reason: str = "") -> ModelVersion:
        return self._one(ModelVersion, "POST", f"/models/{name}/rollback", params={"alias": alias},
                         json={"reason": reason})  # fmt: skip

    def transition(
        self, ref: str, state: State | str, *, comment: str = "", move_alias: bool = True
    ) -> ModelVersion:
        body = {"state": str(state), "comment": comment, "move_alias": move_alias}
        return self._one(
            ModelVersion, "POST", "/version/transitions", params={"ref": ref}, json=body
        )

    def transitions(self, ref: str) -> list[Transition]:
        return self._many(Transition, "GET", "/version/transitions", params={"ref": ref})

    def approve(self, ref: str, *, comment: str = "") -> None:
        self._send("POST", "/version/approvals", params={"ref": ref}, json={"comment": comment})

    def add_gate(
        self, name: str, kind: str, *, to_state: State | str = State.PRODUCTION, **config: Any
    ) -> Gate:
        body = {"kind": kind, "to_state": str(to_state), "config": config}
        return self._one(Gate, "POST", f"/models/{name}/gates", json=body)

    def gates(self, name: str) -> list[Gate]:
        return self._many(Gate, "GET", f"/models/{name}/gates")

    def remove_gate(self, name: str, gate_id: str) -> None:
        self._send("DELETE", f"/models/{name}/gates/{gate_id}")

    def create_run(
        self,
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        datasets: Mapping[str, str] | None = None,
        code_revision: str | None = None,
    ) -> Run:
        body = _plain({"name": name, "params": params, "tags": tags, "datasets": datasets,
                       "code_revision": code_revision})  # fmt: skip
        return self._one(Run, "POST", "/runs", json=body)

    def get_run(self, run_id: str) -> Run:
        return self._one(Run, "GET", f"/runs/{run_id}")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._send("POST", f"/runs/{run_id}/params", json={"values": _plain(params)})

    def log_datasets(self, run_id: str, datasets: Mapping[str, str]) -> None:
        self._send("POST", f"/runs/{run_id}/datasets", json={"values": dict(datasets)})

    def log_artifact(self, run_id: str, name: str, manifest_digest: str) -> None:
        body = {"name": name, "manifest_digest": manifest_digest}
        self._send("POST", f"/runs/{run_id}/artifacts", json=body)

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], *, step: int | None = None
    ) -> None:
        self._send("POST", f"/runs/{run_id}/metrics", json={"metrics": dict(metrics), "step": step})

    def end_run(self, run_id: str, status: str = "finished") -> Run:
        return self._one(Run, "POST", f"/runs/{run_id}/end", json={"status": status})

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return self._many(MetricPoint, "GET", f"/runs/{run_id}/metrics/{key}")

    def search_runs(
        self, filter: str | None = None, *, order_by: str | None = None, limit: int = 100
    ) -> list[Run]:
        query = {"q": filter, "order_by": order_by, "limit": limit}
        return self._many(
            Run, "GET", "/runs", params={k: v for k, v in query.items() if v is not None}
        )

    def lineage(self, ref: str, *, depth: int | None = None) -> Lineage:
        params: dict[str, Any] = {"ref": ref} if depth is None else {"ref": ref, "depth": depth}
        return self._one(Lineage, "GET", "/version/lineage", params=params)

    def diff(self, a: str, b: str) -> VersionDiff:
        # The server reads the manifests and tensors: files and weights are compared there.
        return self._one(VersionDiff, "GET", "/diff", params={"a": a, "b": b})

    def audit_log(self, *, target: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        params = {k: v for k, v in {"target": target, "limit": limit}.items() if v is not None}
        return self._many(AuditEvent, "GET", "/audit", params=params)

    def verify_audit(self, *, head: AuditHead | str | None = None) -> ChainCheck:
        params = {} if head is None else {"head": str(head)}
        return ChainCheck(**self._send("GET", "/audit/verify", params=params).json())

    def audit_head(self) -> AuditHead:
        return self._one(AuditHead, "GET", "/audit/head")

    def acquire_lease(self, name: str, *, holder: str, seconds: float) -> Lease:
        # Sent once: a holder tries again at its next renewal, and must not wait here longer.
        body = {"holder": holder, "seconds": seconds}
        return self._one(Lease, "POST", f"/leases/{quote(name, safe=':@')}", json=body)

    def release_lease(self, name: str, *, holder: str) -> None:
        self._send("DELETE", f"/leases/{quote(name, safe=':@')}", params={"holder": holder})

    @contextmanager
    def staging(self, store: BlobStore) -> Iterator[BlobStore]:
        """Hold small blobs back so they travel inside the next `create_version` request made
        in the block on this thread (registering a small model takes one round trip)."""
        pending = PendingBlobs(store)
        self._staged.pending = pending
        try:
            yield pending
        finally:
            self._staged.pending = None

    def unique_bytes(self, store: BlobStore, *, version_ids: set[str]) -> UniqueBytes | None:
        return None  # the server's roots (and its role checks) are the server's

    def close(self) -> None:
        if self.owns_client:
            self.client.close()


class PendingBlobs:
    """A store that holds small blobs back to send along with the next request (registering a
    small model then takes one round trip), and passes bigger ones to the server at once."""

    def __init__(self, store: BlobStore, *, budget: int = INLINE_BUDGET) -> None:
        self.store = store
        self.budget = budget
        self.pending: dict[str, bytes] = {}

    def put(self, data: BlobSource, *, digest: str | None = None) -> str:
        content = b"".join(iter_source(data))
        digest = digest or digest_bytes(content)
        if len(content) <= INLINE_BLOB and len(content) <= self.budget:
            self.budget -= len(content) if digest not in self.pending else 0
            self.pending[digest] = content
            return digest
        return self.store.put(content, digest=digest)

    def get(self, digest: str) -> Iterator[bytes]:
        if digest in self.pending:
            return iter([self.pending[digest]])
        return self.store.get(digest)

    def exists(self, digest: str) -> bool:
        return digest in self.pending or self.store.exists(digest)

    def delete(self, digest: str) -> bool:
        return self.store.delete(digest)

    def blobs(self) -> Iterator[BlobInfo]:
        return self.store.blobs()

    def encoded(self) -> dict[str, str]:
        """The held blobs as digest -> base64, for a request body."""
        return {
            digest: base64.b64encode(content).decode() for digest, content in self.pending.items()
        }


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            value = list(value)
        plain[key] = value
    return plain


if TYPE_CHECKING:  # mypy checks that both implementations keep the one contract

    def _implementations(embedded: Registry, remote: HttpRegistry) -> list[RegistryAPI]:
        return [embedded, remote]
