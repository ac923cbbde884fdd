"""Garbage collection: delete the blobs that nothing kept references, and never one that is.

What is kept (the root set) comes from the caller: the registry's `registry_roots` for
`modelyard store gc`, or an explicit list of manifests for a store without a registry. Around
it, the collection is a mark and sweep:

1. Exclude writers (`collecting`: a lock for a local store, leases on S3). A `log_model` holds
   the other side (`guard_writes`) from its first `put` until its version is committed, so no
   write is between reusing a blob and registering the version that needs it.
2. List the blobs, then read the roots (a callable, so they are read under the exclusion).
3. Mark: every kept manifest's blobs, and the blobs of any manifest younger than the grace
   period (uploaded for a registration not committed yet, e.g. through a server).
4. List again and spare what has turned young since (writers outside `guard_writes`, such as
   a server's uploads, are protected by age alone).
5. Sweep: unreferenced manifests first, then the other blobs. A `kill -9` anywhere leaves
   every remaining manifest whole: a manifest's blobs go only once the manifest has gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from modelyard.errors import BlobNotFound, CollectionRefused, InvalidManifest
from modelyard.store._manifests import FORMAT, Manifest, load_manifest
from modelyard.store._protocol import BlobInfo, BlobStore, read_bytes

GRACE = timedelta(hours=1)
"""Unreferenced blobs younger than this are kept: bytes written for a registration that has not
committed yet. A reused blob's age restarts when `put` finds it stored."""

WAIT = 300.0
"""Seconds a collection waits for writes in flight to commit before it gives up."""

MANIFEST_MAX = 64 << 20
"""Blobs larger than this are never read to see whether they are manifests."""

_MANIFEST_STARTS = (b'{"entries":[', b'{"format":"' + FORMAT.encode() + b'"')


class KeptDigest(Protocol):
    """A digest to keep, with what holds it (the registry's `Root` is one)."""

    @property
    def digest(self) -> str:
        """The blob or manifest digest."""
        ...

    @property
    def manifest(self) -> bool:
        """Whether it names a manifest, whose blobs are kept too (and which must be there)."""
        ...

    @property
    def holder(self) -> str:
        """Who references it, for messages (`fraud:3`, `run … artifact model`)."""
        ...


Kept = Manifest | str | KeptDigest
"""A manifest, a manifest's digest, or a `KeptDigest`."""


@runtime_checkable
class _Guarded(Protocol):
    def writing(self) -> AbstractContextManager[None]: ...

    def collecting(self, *, wait: float) -> AbstractContextManager[None]: ...


@dataclass(slots=True)
class GarbageReport:
    """What a collection found (and, unless it was a dry run, deleted)."""

    unreferenced: list[BlobInfo] = field(default_factory=list)
    kept: int = 0
    dry_run: bool = True
    roots: int = 0
    missing: list[str] = field(default_factory=list)
    """Holders of kept plain blobs that are no longer in the store (nothing to keep there)."""

    @property
    def reclaimable_bytes(self) -> int:
        """Bytes the unreferenced blobs take."""
        return sum(info.size for info in self.unreferenced)


@dataclass(frozen=True, slots=True)
class UniqueBytes:
    """The blobs (and bytes) that only some manifests reference: what deleting them frees."""

    blobs: int
    size: int


def guard_writes(store: BlobStore) -> AbstractContextManager[None]:
    """Hold off garbage collection from the first `put` until the version is registered.

    >>> with guard_writes(store):
    ...     manifest = store_directory(store, folder)
    ...     registry.create_version("fraud", manifest_digest=manifest.digest)
    """
    if isinstance(store, _Guarded):
        return store.writing()
    return nullcontext()


def collect_garbage(
    store: BlobStore,
    keep: Iterable[Kept] | Callable[[], Iterable[Kept]],
    *,
    dry_run: bool = True,
    grace: timedelta = GRACE,
    wait: float = WAIT,
) -> GarbageReport:
    """Find, and unless `dry_run` delete, every blob that nothing in `keep` references.

    `keep` holds manifests, manifest digests or `KeptDigest`s, or is a callable returning them
    (called once writers are excluded: pass the registry's roots this way). A kept manifest
    missing from the store raises `CollectionRefused`: its blobs cannot be known, so nothing is
    deleted. Blobs newer than `grace`, and the blobs of manifests newer than it, are spared.

    >>> report = collect_garbage(store, lambda: registry_roots(database), dry_run=False)
    """
    cutoff = datetime.now(UTC) - grace
    exclusion = nullcontext() if dry_run else _collecting(store, wait)
    with exclusion:
        listed = list(store.blobs())
        report = GarbageReport(dry_run=dry_run)
        referenced = _mark(store, keep() if callable(keep) else keep, report)
        young = [info for info in listed if info.modified > cutoff]
        for info in young:  # a registration in flight: its manifest's blobs stay with it
            if info.digest not in referenced and (manifest := _as_manifest(store, info)):
                referenced.update(manifest.blob_digests())
        for info in listed:
            if info.digest in referenced or info.modified > cutoff:
                report.kept += 1
            else:
                report.unreferenced.append(info)
        if not dry_run:
            _recheck(store, report, referenced, cutoff)
            _sweep(store, report.unreferenced)
    return report


def unique_bytes(store: BlobStore, *, removed: Iterable[Kept], kept: Iterable[Kept]) -> UniqueBytes:
    """The blobs `removed` references and `kept` does not, with their size (manifests too)."""
    gone = _sizes(store, removed)
    for digest in _sizes(store, kept):
        gone.pop(digest, None)
    return UniqueBytes(blobs=len(gone), size=sum(gone.values()))


def _collecting(store: BlobStore, wait: float) -> AbstractContextManager[None]:
    if isinstance(store, _Guarded):
        return store.collecting(wait=wait)
    return nullcontext()


def _recheck(
    store: BlobStore, report: GarbageReport, referenced: set[str], cutoff: datetime
) -> None:
    # Writers that skip `guard_writes` (a server taking uploads for a registration it commits
    # later) are covered by age alone; list again, so a blob reused or a manifest uploaded
    # since the first listing is seen young now, not by its age before.
    now = {info.digest: info for info in store.blobs()}
    for info in now.values():
        if info.modified > cutoff and info.digest not in referenced:
            if manifest := _as_manifest(store, info):
                referenced.update(manifest.blob_digests())
    doomed = [
        info
        for info in report.unreferenced
        if info.digest not in referenced
        and (info.digest not in now or now[info.digest].modified <= cutoff)
    ]
    report.kept += len(report.unreferenced) - len(doomed)
    report.unreferenced = doomed


def _mark(store: BlobStore, keep: Iterable[Kept], report: GarbageReport) -> set[str]:
    referenced: set[str] = set()
    for item in keep:
        report.roots += 1
        if isinstance(item, Manifest):
            referenced.add(item.digest)
            referenced.update(item.blob_digests())
            continue
        digest, is_manifest, holder = _fields(item)
        referenced.add(digest)
        try:
            if is_manifest:
                referenced.update(load_manifest(store, digest).blob_digests())
            elif manifest := _read_manifest(store, digest):  # a dataset stored as a folder
                referenced.update(manifest.blob_digests())
        except BlobNotFound:
            if is_manifest:
                raise CollectionRefused(
                    f"the manifest {digest} of {holder} is not in the store, so the blobs it "
                    "needs cannot be known; nothing was deleted. Restore the store (or delete "
                    "what holds it) and collect again"
                ) from None
            report.missing.append(holder)
    return referenced


def _fields(item: str | KeptDigest) -> tuple[str, bool, str]:
    if isinstance(item, str):
        return item, True, f"kept manifest {item}"
    return item.digest, item.manifest, item.holder


@runtime_checkable
class _DeletesMany(Protocol):
    def delete_many(self, digests: Iterable[str]) -> int: ...


def _sweep(store: BlobStore, unreferenced: list[BlobInfo]) -> None:
    manifests = {info.digest for info in unreferenced if _as_manifest(store, info)}
    others = [info.digest for info in unreferenced if info.digest not in manifests]
    if isinstance(store, _DeletesMany):  # packs: each is rewritten once per call, not per blob
        store.delete_many(manifests)  # first, so no remaining manifest ever lacks a blob
        store.delete_many(others)
        return
    for digest in manifests:
        store.delete(digest)
    for digest in others:
        store.delete(digest)


def _as_manifest(store: BlobStore, info: BlobInfo) -> Manifest | None:
    if info.size > MANIFEST_MAX:
        return None
    return _read_manifest(store, info.digest)


def _read_manifest(store: BlobStore, digest: str) -> Manifest | None:
    pieces = store.get(digest)
    try:
        first = next(pieces, b"")
        if not first.startswith(_MANIFEST_STARTS):
            return None
        return Manifest.parse(first + b"".join(pieces))
    except InvalidManifest:
        return None
    finally:
        if isinstance(pieces, Iterator) and hasattr(pieces, "close"):
            pieces.close()


def _sizes(store: BlobStore, items: Iterable[Kept]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for item in items:
        try:
            if isinstance(item, Manifest):
                manifest: Manifest | None = item
            else:
                digest, is_manifest, _ = _fields(item)
                data = read_bytes(store, digest)
                manifest = Manifest.parse(data) if is_manifest else None
                sizes[digest] = len(data)
        except (BlobNotFound, InvalidManifest):
            continue
        if manifest is not None:
            sizes[manifest.digest] = len(manifest.canonical())
            for entry in manifest.entries:
                sizes.update((chunk.digest, chunk.size) for chunk in entry.chunks)
    return sizes
