"""Pull an OCI artifact into the blob store, verifying every byte on the way in.

A modelyard artifact carries its own manifest as a layer: its blobs go straight into the store.
Anything else (files pushed by `oras push`) is rebuilt as a folder from the layers' titles and
stored like any model folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.deploy import _oci_media as media
from modelyard.deploy._oci_client import OciClient
from modelyard.deploy._oci_layers import (
    MANIFEST_LIMIT,
    Descriptor,
    ImageManifest,
    bounded,
    checked,
    parse_image,
    safe_path,
    unpack_tar,
)
from modelyard.deploy._oci_refs import OciReference, parse_reference
from modelyard.errors import DigestMismatch, InvalidManifest
from modelyard.store import (
    BlobStore,
    Manifest,
    digest_bytes,
    save_manifest,
    store_directory,
)

METADATA_LIMIT = 64 << 20
"""Largest modelyard manifest or version record layer read into memory."""

UNPACK_LIMIT = 64 << 30
"""Most bytes a tar layer of a foreign artifact may unpack to."""

SIGNATURE_LIMIT = 1 << 20
"""Largest signature bundle read (they are a few KiB)."""

WORKERS = 8
"""Layers downloaded at once."""

IN_MEMORY = 4 << 20
"""Layers up to this size are read whole (verified) before the store gets them; larger stream."""


class VersionRecord(BaseModel):
    """The version record a modelyard push carries: data to copy, never trust."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(max_length=255)
    number: int
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = Field(default="", max_length=100_000)
    flavor: str | None = Field(default=None, max_length=64)
    parents: list[str] = Field(default_factory=list, max_length=16)
    manifest_digest: str | None = None


@dataclass(frozen=True, slots=True)
class PulledArtifact:
    """What a pull brought: the pinned `reference`, the OCI manifest `digest`, the stored
    modelyard `manifest_digest`, the version `record` (None for foreign artifacts), and how
    many blobs and bytes were downloaded (the rest were in the store). `signature` is the
    signing bundle a modelyard push carried (`model.sig`): verify it, never trust it."""

    reference: str
    digest: str
    manifest_digest: str
    record: VersionRecord | None
    downloaded: int
    downloaded_bytes: int
    signature: bytes | None = None


def pull_artifact(
    source: str,
    store: BlobStore,
    *,
    username: str | None = None,
    password: str | None = None,
    plain_http: Iterable[str] = (),
    workers: int = WORKERS,
    scratch: str | Path | None = None,
) -> PulledArtifact:
    """Pull `source` (`oci://HOST/REPO:TAG` or `@sha256:…`) into `store`; return its manifest.

    `scratch` is where a foreign artifact's files are rebuilt (a temporary folder if None).

    >>> pulled = pull_artifact("oci://127.0.0.1:5000/models/fraud:v3", store)
    >>> restore_directory(store, pulled.manifest_digest, "fraud/")
    """
    ref = parse_reference(source, plain_http=plain_http)
    with OciClient(ref, username=username, password=password, plain_http=plain_http) as client:
        raw = _manifest_bytes(client, ref)
        digest = digest_bytes(raw)
        image = parse_image(raw, str(ref))
        mine = [layer for layer in image.layers if layer.media_type == media.MODELYARD_MANIFEST]
        puller = _Puller(client, store, str(ref), workers)
        signature = None
        if mine:
            manifest_digest, record = puller.modelyard(image, mine[0])
            signature = puller.signature(image)
        else:
            manifest_digest, record = puller.foreign(image, scratch), None
    return PulledArtifact(
        reference=ref.with_digest(digest),
        digest=digest,
        manifest_digest=manifest_digest,
        record=record,
        downloaded=puller.downloaded,
        downloaded_bytes=puller.downloaded_bytes,
        signature=signature,
    )


def _manifest_bytes(client: OciClient, ref: OciReference) -> bytes:
    with client.stream(
        f"/manifests/{ref.reference}", headers={"Accept": media.MANIFEST_ACCEPT}
    ) as pieces:
        raw = bounded(pieces, MANIFEST_LIMIT, f"the manifest of {ref}")
    if ref.digest is not None and digest_bytes(raw) != ref.digest:
        raise DigestMismatch(ref.digest, actual=digest_bytes(raw))
    return raw


class _Puller:
    def __init__(self, client: OciClient, store: BlobStore, where: str, workers: int) -> None:
        self.client = client
        self.store = store
        self.where = where
        self.workers = max(1, workers)
        self.downloaded = 0
        self.downloaded_bytes = 0

    def modelyard(
        self, image: ImageManifest, layer: Descriptor
    ) -> tuple[str, VersionRecord | None]:
        manifest = Manifest.parse(self.small(layer))
        present = {item.digest: item for item in image.layers}
        needed = {chunk.digest: chunk.size for entry in manifest.entries for chunk in entry.chunks}
        missing = sorted(set(needed) - set(present))
        if missing:
            raise InvalidManifest(
                f"{self.where}: the manifest names blobs no layer holds: {missing[:3]}"
            )
        wrong = [d for d, size in needed.items() if present[d].size != size]
        if wrong:
            raise InvalidManifest(
                f"{self.where}: layer sizes differ from the manifest's: {wrong[:3]}"
            )
        with _batch(self.store), ThreadPoolExecutor(self.workers, "modelyard-oci-pull") as pool:
            list(pool.map(self.fetch, [present[d] for d in needed]))
        records = [item for item in image.layers if item.media_type == media.MODELYARD_VERSION]
        record = self.record(records[0]) if records else None
        return save_manifest(self.store, manifest), record  # last: it names stored blobs only

    def small(self, layer: Descriptor) -> bytes:
        if layer.size > METADATA_LIMIT:
            raise InvalidManifest(
                f"{self.where}: layer {layer.digest} is over {METADATA_LIMIT} bytes"
            )
        with self.client.stream(f"/blobs/{layer.digest}") as pieces:
            return b"".join(checked(pieces, layer, self.where))

    def signature(self, image: ImageManifest) -> bytes | None:
        found = [item for item in image.layers if item.media_type == media.MODELYARD_SIGNATURE]
        if not found:
            return None
        if found[0].size > SIGNATURE_LIMIT:
            raise InvalidManifest(f"{self.where}: a signature over {SIGNATURE_LIMIT} bytes")
        return self.small(found[0])

    def record(self, layer: Descriptor) -> VersionRecord:
        try:
            return VersionRecord.model_validate_json(self.small(layer))
        except ValidationError as error:
            first = error.errors()[0]
            at = ".".join(str(part) for part in first["loc"])
            raise InvalidManifest(
                f"{self.where}: invalid version record: {at}: {first['msg']}"
            ) from None

    def fetch(self, layer: Descriptor) -> None:
        """Stream one blob into the store, verified; skip one the store has."""
        if self.store.exists(layer.digest):
            return
        with self.client.stream(f"/blobs/{layer.digest}") as pieces:
            if layer.size <= IN_MEMORY:  # whole and verified first: the store needn't hash again
                data = b"".join(checked(pieces, layer, self.where))
                stored = self.store.put(data, digest=layer.digest)
            else:
                stored = self.store.put(checked(pieces, layer, self.where))
        if stored != layer.digest:  # `checked` already refused; a store bug must not pass
            raise DigestMismatch(layer.digest, actual=stored)
        self.downloaded += 1
        self.downloaded_bytes += layer.size

    def download(self, layer: Descriptor, path: Path) -> None:
        with self.client.stream(f"/blobs/{layer.digest}") as pieces:
            with open(path, "wb") as handle:
                for piece in checked(pieces, layer, self.where):
                    handle.write(piece)
        self.downloaded += 1
        self.downloaded_bytes += layer.size

    def foreign(self, image: ImageManifest, scratch: str | Path | None) -> str:
        """Files by their titles (ORAS's convention), tar+gzip folders unpacked; then stored."""
        titled = [(item, item.annotations.get(media.TITLE)) for item in image.layers]
        files = [(item, safe_path(title, self.where)) for item, title in titled if title]
        if not files:
            raise InvalidManifest(
                f"{self.where}: no layer has a file name (org.opencontainers.image.title)"
            )
        names = [title for _, title in files]
        if len(set(names)) != len(names):
            raise InvalidManifest(f"{self.where}: two layers have the same file name")
        work = Path(tempfile.mkdtemp(prefix="oci-pull-", dir=scratch))
        try:
            root, parts = work / "files", work / "layers"
            root.mkdir()
            parts.mkdir()
            for index, (item, title) in enumerate(files):
                part = parts / str(index)
                self.download(item, part)
                self.place(item, title, part, root)
            return store_directory(self.store, root).digest
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def place(self, layer: Descriptor, title: str, part: Path, root: Path) -> None:
        target = root / title
        if target.exists() or any(p.is_symlink() for p in target.parents if p != root):
            raise InvalidManifest(f"{self.where}: {title!r} overlaps another layer's files")
        try:
            if _is_folder(layer):
                target.parent.mkdir(parents=True, exist_ok=True)
                unpack_tar(
                    part, target.parent, prefix=target.name, limit=UNPACK_LIMIT,
                    where=f"{self.where}: {title}",
                )  # fmt: skip
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
        except OSError as error:  # a file where another layer needs a folder, or the reverse
            raise InvalidManifest(
                f"{self.where}: {title!r} overlaps another layer: {error}"
            ) from None


@runtime_checkable
class _Batching(Protocol):
    def batch(self) -> AbstractContextManager[None]: ...


def _batch(store: BlobStore) -> AbstractContextManager[None]:
    """The store's batch (small blobs packed together, as `store_directory` does), if it has one."""
    return store.batch() if isinstance(store, _Batching) else nullcontext()


def _is_folder(layer: Descriptor) -> bool:
    """A folder packed by ORAS: the CLI's unpack annotation, or oras-py's media type."""
    flagged = layer.annotations.get(media.UNPACK, "").lower() == "true"
    return flagged or layer.media_type == media.DIR_LAYER
