from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from modelyard.errors import CollectionRefused, StoreBusy
from modelyard.store import (
    BlobStore,
    LocalStore,
    collect_garbage,
    guard_writes,
    store_directory,
    unique_bytes,
)


def make_folder(root: Path, text: str) -> Path:
    root.mkdir()
    (root / "shared.txt").write_text("common to both")
    (root / "own.txt").write_text(text)
    return root


def test_gc_deletes_only_unreferenced_blobs(store: BlobStore, tmp_path: Path) -> None:
    kept = store_directory(store, make_folder(tmp_path / "a", "kept"))
    dropped = store_directory(store, make_folder(tmp_path / "b", "dropped"))
    stray = store.put(b"stray blob")

    report = collect_garbage(store, [kept.digest], grace=timedelta(0))
    assert report.dry_run
    doomed = {info.digest for info in report.unreferenced}
    own_blob = next(e for e in dropped.entries if e.path == "own.txt").chunks[0].digest
    assert doomed == {dropped.digest, own_blob, stray}
    assert report.reclaimable_bytes > 0
    assert all(store.exists(digest) for digest in doomed)  # dry run deletes nothing

    report = collect_garbage(store, [kept], dry_run=False, grace=timedelta(0))
    assert not any(store.exists(digest) for digest in doomed)
    assert store.exists(kept.digest)
    assert all(store.exists(digest) for digest in kept.blob_digests())
    assert report.kept == 3


def test_gc_spares_young_blobs(store: BlobStore) -> None:
    young = store.put(b"being written right now")
    report = collect_garbage(store, [], dry_run=False)
    assert report.unreferenced == []
    assert store.exists(young)


@pytest.fixture(params=["local", "s3"])
def lasting_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """The stores that keep blobs across processes (and so take part in the gc protocol)."""
    if request.param == "local":
        return LocalStore(tmp_path / "blobs")
    store: BlobStore = request.getfixturevalue("s3_store")
    return store


def age(store: LocalStore, seconds: float) -> None:
    then = time.time() - seconds
    for info in store.blobs():
        os.utime(store.holder(info.digest), (then, then))


def modified(store: BlobStore, digest: str) -> datetime:
    return next(info.modified for info in store.blobs() if info.digest == digest)


def test_put_restarts_a_reused_blobs_age(lasting_store: BlobStore) -> None:
    digest = lasting_store.put(b"reused weights")
    if isinstance(lasting_store, LocalStore):
        age(lasting_store, 7200)
    else:
        time.sleep(1.1)  # S3 times have a resolution of a second
    first = modified(lasting_store, digest)
    assert lasting_store.put(b"reused weights", digest=digest) == digest
    assert modified(lasting_store, digest) > first
    second = modified(lasting_store, digest)
    if isinstance(lasting_store, LocalStore):
        age(lasting_store, 7200)
        second = modified(lasting_store, digest)
    else:
        time.sleep(1.1)
    assert lasting_store.put(iter([b"reused ", b"weights"])) == digest  # streamed, unhashed
    assert modified(lasting_store, digest) > second


def test_a_reregistration_of_old_blobs_survives_the_grace_period(tmp_path: Path) -> None:
    # The race with the default grace: blobs two hours old, reused by a registration
    # that has not committed yet; the collection must not take them.
    store = LocalStore(tmp_path / "blobs")
    store_directory(store, make_folder(tmp_path / "a", "weights"))
    age(store, 7200)
    again = store_directory(store, make_folder(tmp_path / "b", "weights"))
    report = collect_garbage(store, [], dry_run=False)
    assert report.unreferenced == []
    assert all(store.exists(digest) for digest in [again.digest, *again.blob_digests()])


def test_a_young_manifest_keeps_its_old_blobs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, make_folder(tmp_path / "a", "weights"))
    age(store, 7200)
    os.utime(store.path(manifest.digest))  # uploaded for a registration still in flight
    report = collect_garbage(store, [], dry_run=False)
    assert report.unreferenced == []
    assert all(store.exists(digest) for digest in manifest.blob_digests())


def test_unreferenced_manifests_go_before_their_blobs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, make_folder(tmp_path / "a", "weights"))
    order: list[set[str]] = []

    class Recording(LocalStore):
        def delete_many(self, digests: Iterable[str]) -> int:
            order.append(set(digests))
            return super().delete_many(order[-1])

    report = collect_garbage(Recording(store.root), [], dry_run=False, grace=timedelta(0))
    assert len(report.unreferenced) == 3
    assert order[0] == {manifest.digest}
    assert order[1] == set(manifest.blob_digests())
    assert list(store.blobs()) == []


def test_a_missing_kept_manifest_stops_the_collection(store: BlobStore) -> None:
    stray = store.put(b"stray")
    missing = "sha256:" + "0" * 64
    with pytest.raises(CollectionRefused, match="nothing was deleted"):
        collect_garbage(store, [missing], dry_run=False, grace=timedelta(0))
    assert store.exists(stray)


def test_unique_bytes(store: BlobStore, tmp_path: Path) -> None:
    kept = store_directory(store, make_folder(tmp_path / "a", "kept"))
    dropped = store_directory(store, make_folder(tmp_path / "b", "dropped!"))
    unique = unique_bytes(store, removed=[dropped.digest], kept=[kept.digest])
    assert unique.blobs == 2  # its own file and its manifest; shared.txt stays
    assert unique.size == len("dropped!") + len(dropped.canonical())


def test_writes_hold_off_a_collection(lasting_store: BlobStore) -> None:
    with guard_writes(lasting_store):
        with pytest.raises(StoreBusy, match="--wait-seconds"):
            collect_garbage(lasting_store, [], dry_run=False, wait=0.5)
        report = collect_garbage(lasting_store, [])  # a dry run does not wait
        assert report.dry_run
    assert collect_garbage(lasting_store, [], dry_run=False, wait=5).unreferenced == []
