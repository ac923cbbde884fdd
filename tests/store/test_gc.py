from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from modelyard.store import BlobStore, collect_garbage, store_directory


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
