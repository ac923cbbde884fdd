"""Push a model version to an OCI registry: one image manifest, each stored blob one layer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from modelyard.deploy import _oci_media as media
from modelyard.deploy._oci_client import Body, OciClient
from modelyard.deploy._oci_layers import MANIFEST_LIMIT, bounded, parse_image
from modelyard.deploy._oci_refs import parse_reference
from modelyard.errors import ConfigurationError, InvalidManifest, OciRegistryError
from modelyard.registry import ModelVersion
from modelyard.security import SIGNATURE_FILE, SIGNATURE_TAG
from modelyard.store import (
    BlobStore,
    Manifest,
    digest_bytes,
    load_manifest,
    read_bytes,
)

WORKERS = 16
"""Blobs checked (HEAD) and small blobs sent at once: each is mostly a round trip."""

BIG_BLOB = 16 << 20
"""Blobs at least this big are sent at most `BIG_UPLOADS` at a time (bounded memory/bandwidth)."""

BIG_UPLOADS = 4


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: the pinned `reference`, the manifest `digest`, the layer count, and how
    many blobs (and bytes) were sent versus found in the registry already."""

    reference: str
    digest: str
    layers: int
    uploaded: int
    uploaded_bytes: int
    skipped_bytes: int


@dataclass(frozen=True, slots=True)
class _Layer:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None  # held in memory (metadata layers); else read from the store

    def descriptor(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out


def push_version(
    store: BlobStore,
    version: ModelVersion,
    target: str,
    *,
    username: str | None = None,
    password: str | None = None,
    plain_http: Iterable[str] = (),
    workers: int = WORKERS,
    known: str | None = None,
) -> PushResult:
    """Push `version`'s files from `store` to `target` (`oci://HOST/REPO:TAG`).

    Blobs the registry has already are not sent; the manifest is put last, so a tag never
    names missing layers. `known` is the digest of a manifest pushed to this repository
    before (a hint): if the registry still serves it, its layers count as present, one GET
    instead of a HEAD per layer, and the same claim a HEAD would get from the registry.

    >>> push_version(store, version, "oci://127.0.0.1:5000/models/fraud:v3").digest
    'sha256:…'
    """
    ref = parse_reference(target, plain_http=plain_http)
    if ref.digest is not None:
        raise ConfigurationError(f"push to a tag, not a digest: {target}")
    if version.manifest_digest is None:
        raise ConfigurationError(f"{version.ref} has no stored files to push")
    manifest = load_manifest(store, version.manifest_digest)
    layers = _layers(store, manifest, version)
    config = _json(_config(version, layers))
    body = _json(_image_manifest(version, config, layers))
    with OciClient(
        ref, username=username, password=password, plain_http=plain_http, push=True
    ) as client:
        blobs = [
            *layers,
            _Layer(media.MODEL_CONFIG, digest_bytes(config), len(config), data=config),
        ]
        # Answers the auth challenge once; a repository with no tags yet holds no blobs worth
        # a HEAD each (one it did hold is only sent again, which the registry accepts).
        tags = client.request("GET", "/tags/list", ok=(200, 404))
        present = _present(client, known) if known and tags.status_code == 200 else set()
        check = tags.status_code == 200
        sent = _send_all(client, store, blobs, skip=present, check=check, workers=workers)
        try:
            _put_manifest(client, ref.tag, body)
        except OciRegistryError:
            if not present:
                raise
            # The hinted manifest named a blob the registry lost: HEAD those, then put again.
            again = _send_all(client, store, blobs, skip=set(), check=True, workers=workers)
            sent = [first or second for first, second in zip(sent, again, strict=True)]
            _put_manifest(client, ref.tag, body)
    digest = digest_bytes(body)
    return PushResult(
        reference=ref.with_digest(digest),
        digest=digest,
        layers=len(layers),
        uploaded=sum(1 for was_sent in sent if was_sent),
        uploaded_bytes=sum(b.size for b, was_sent in zip(blobs, sent, strict=True) if was_sent),
        skipped_bytes=sum(b.size for b, was_sent in zip(blobs, sent, strict=True) if not was_sent),
    )


def _layers(store: BlobStore, manifest: Manifest, version: ModelVersion) -> list[_Layer]:
    """One layer per distinct blob, in manifest order; then modelyard's manifest and record."""
    layers: dict[str, _Layer] = {}
    for entry in manifest.entries:
        whole = len(entry.chunks) == 1
        for chunk in entry.chunks:
            if chunk.digest in layers:
                continue  # a blob used twice is one layer
            if whole:
                kind = media.file_media_type(entry.path)
                notes = {media.FILEPATH: entry.path, media.TITLE: entry.path}
            else:
                kind, notes = media.MODELYARD_CHUNK, {}
            layers[chunk.digest] = _Layer(kind, chunk.digest, chunk.size, notes)
    canonical = manifest.canonical()
    record = _json(_record(version))
    return [
        *layers.values(),
        _Layer(media.MODELYARD_MANIFEST, manifest.digest, len(canonical), data=canonical),
        _Layer(media.MODELYARD_VERSION, digest_bytes(record), len(record), data=record),
        *_signature(store, version),
    ]


def _signature(store: BlobStore, version: ModelVersion) -> list[_Layer]:
    """The signature bundle as a layer titled `model.sig` (as `download` writes it), if any."""
    digest = version.tags.get(SIGNATURE_TAG)
    if digest is None or not store.exists(digest):
        return []
    bundle = read_bytes(store, digest)
    notes = {media.TITLE: SIGNATURE_FILE}
    return [_Layer(media.MODELYARD_SIGNATURE, digest, len(bundle), notes, data=bundle)]


def _record(version: ModelVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "number": version.number,
        "params": version.params,
        "metrics": version.metrics,
        "tags": {k: v for k, v in version.tags.items() if k != SIGNATURE_TAG},  # a pointer
        "description": version.description,
        "flavor": version.flavor,
        "parents": version.parents,
        "manifest_digest": version.manifest_digest,
    }


def _config(version: ModelVersion, layers: list[_Layer]) -> dict[str, Any]:
    """The ModelPack config: who the model is, its format, and the layers that make it."""
    return {
        "descriptor": {
            "name": version.name,
            "version": str(version.number),
            "createdAt": version.created_at.isoformat(),
        },
        "config": {"format": version.flavor or ""},
        "modelfs": {"type": "layers", "diffIds": [layer.digest for layer in layers]},
    }


def _image_manifest(version: ModelVersion, config: bytes, layers: list[_Layer]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "artifactType": media.MODEL_ARTIFACT,
        "config": {
            "mediaType": media.MODEL_CONFIG,
            "digest": digest_bytes(config),
            "size": len(config),
        },
        "layers": [layer.descriptor() for layer in layers],
        "annotations": {
            media.CREATED: version.created_at.isoformat(),
            media.VERSION_REF: version.ref,
        },
    }


def _json(data: dict[str, Any]) -> bytes:
    # Sorted and compact: pushing the same version twice gives the same digests.
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _send_all(
    client: OciClient,
    store: BlobStore,
    blobs: list[_Layer],
    *,
    skip: set[str],
    check: bool,
    workers: int,
) -> list[bool]:
    """Upload each blob not in `skip` that the registry lacks; which ones were sent."""
    big = threading.BoundedSemaphore(BIG_UPLOADS)

    def send(layer: _Layer) -> bool:
        return layer.digest not in skip and _upload(client, store, layer, big, check=check)

    with ThreadPoolExecutor(max(1, workers), "modelyard-oci-push") as pool:
        return list(pool.map(send, blobs))


def _put_manifest(client: OciClient, tag: str | None, body: bytes) -> None:
    client.request(
        "PUT", f"/manifests/{tag}", body=body,
        headers={"Content-Type": media.OCI_MANIFEST}, ok=(201,),
    )  # fmt: skip


def _present(client: OciClient, digest: str) -> set[str]:
    """The blobs a manifest this repository serves names (none if it is gone or not that)."""
    try:
        with client.stream(f"/manifests/{digest}", headers={"Accept": media.OCI_MANIFEST}) as got:
            raw = bounded(got, MANIFEST_LIMIT, f"the manifest {digest}")
        if digest_bytes(raw) != digest:
            return set()
        image = parse_image(raw, digest)
    except (OciRegistryError, InvalidManifest):
        return set()  # a hint only: HEAD every layer as without it
    return {image.config.digest, *(layer.digest for layer in image.layers)}


def _upload(
    client: OciClient,
    store: BlobStore,
    layer: _Layer,
    big: threading.BoundedSemaphore,
    *,
    check: bool,
) -> bool:
    """Send one blob unless the registry has it (HEAD, if `check`); return whether it was sent."""
    if check:
        head = client.request("HEAD", f"/blobs/{layer.digest}", ok=(200, 404))
        if head.status_code == 200:
            return False
    if layer.size >= BIG_BLOB:
        with big:
            _send(client, store, layer)
    else:
        _send(client, store, layer)
    return True


def _send(client: OciClient, store: BlobStore, layer: _Layer) -> None:
    """POST then PUT with the digest: distribution 2.8 ignores a body on the POST (202), so a
    one-request monolithic upload would send every byte twice there."""
    start = client.request("POST", "/blobs/uploads/", ok=(202,))
    location = start.headers.get("location")
    if not location:
        raise OciRegistryError(f"{client.ref.host} started an upload without a Location")
    url = _with_digest(client.ref.base_url, location, layer.digest)
    client.check_url(url)
    body: Body = layer.data if layer.data is not None else (lambda: _stream(store, layer.digest))
    client.request(
        "PUT", url, body=body, ok=(201,),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(layer.size)},
    )  # fmt: skip


def _stream(store: BlobStore, digest: str) -> Iterator[bytes]:
    # Every `BlobStore.get` verifies the digest as it reads (its contract), and the registry
    # checks the `digest=` of the PUT: hashing here a third time bought nothing.
    return store.get(digest)


def _with_digest(base_url: str, location: str, digest: str) -> str:
    from urllib.parse import urljoin

    url = urljoin(base_url, location)
    return f"{url}{'&' if '?' in url else '?'}digest={digest}"
