"""The stat cache: an unchanged file is not read again, and nothing else ever reuses an entry."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from modelyard.store import LocalStore, read_bytes, restore_directory, store_directory
from modelyard.store._statcache import SETTLE_NS, StatCache, now_ns

SIZE = 3 << 20


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A folder with one cut file, old enough (past the settle margin) to be recorded."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(np.random.default_rng(0).bytes(SIZE))
    time.sleep(SETTLE_NS / 1e9 + 0.1)
    return folder


def cached(store: LocalStore, path: Path) -> bool:
    return store.stat_cache().lookup(path, path.stat()) is not None


def test_an_unchanged_file_is_reused_from_the_cache(model: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    first = store_directory(store, model)
    assert cached(store, model / "weights.bin")
    assert store_directory(store, model) == first
    restore_directory(store, first, tmp_path / "copy")
    assert (tmp_path / "copy" / "weights.bin").read_bytes() == (model / "weights.bin").read_bytes()


def test_a_hit_restarts_the_age_of_every_reused_blob(model: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, model)
    old = time.time() - 7200
    for holder in {store.holder(digest) for digest in manifest.blob_digests()}:
        os.utime(holder, (old, old))
    store = LocalStore(tmp_path / "blobs")  # a new process: nothing remembered as touched
    assert store_directory(store, model) == manifest
    for digest in manifest.blob_digests():
        assert store.holder(digest).stat().st_mtime > old + 3600


def test_an_edit_in_place_keeping_size_and_mtime_is_read_again(model: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    path = model / "weights.bin"
    before = store_directory(store, model)
    info = path.stat()
    with path.open("r+b") as handle:
        handle.seek(SIZE // 2)
        handle.write(b"edited")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (info.st_size, info.st_mtime_ns)
    manifest = store_directory(store, model)
    assert manifest != before
    restore_directory(store, manifest, tmp_path / "copy")
    assert (tmp_path / "copy" / "weights.bin").read_bytes() == path.read_bytes()


def test_an_entry_never_applies_to_another_path(model: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    store_directory(store, model)
    path = model / "weights.bin"
    other = tmp_path / "elsewhere" / "weights.bin"
    assert store.stat_cache().lookup(other, path.stat()) is None


def test_an_entry_never_applies_to_another_store(model: Path, tmp_path: Path) -> None:
    first, second = LocalStore(tmp_path / "one"), LocalStore(tmp_path / "two")
    manifest = store_directory(first, model)
    assert not cached(second, model / "weights.bin")
    assert store_directory(second, model) == manifest
    assert all(second.exists(digest) for digest in manifest.blob_digests())


def test_a_chunk_gone_from_the_store_makes_it_read_the_file(model: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, model)
    victim = next(iter(manifest.blob_digests()))
    assert store.delete(victim)
    assert store_directory(store, model) == manifest
    assert store.exists(victim)
    read_bytes(store, victim)


def test_a_corrupt_cache_is_ignored_and_rebuilt(model: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, model)
    store.stat_cache().close()
    for name in ("statcache.sqlite-wal", "statcache.sqlite-shm"):
        (store.root / name).unlink(missing_ok=True)
    (store.root / "statcache.sqlite").write_bytes(b"not a database" * 100)
    store = LocalStore(tmp_path / "blobs")
    assert store_directory(store, model) == manifest
    assert cached(store, model / "weights.bin")


def test_an_unreadable_cache_turns_itself_off(model: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    (store.root / "statcache.sqlite").mkdir(parents=True)  # cannot be opened or removed
    manifest = store_directory(store, model)
    assert store_directory(store, model) == manifest
    assert not cached(store, model / "weights.bin")


def test_a_file_changed_just_before_it_was_read_is_not_recorded(tmp_path: Path) -> None:
    # File times move in clock ticks: a write in the same tick as the read could go unseen.
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"x" * 100)
    cache = StatCache(tmp_path / "cache.sqlite")
    assert not cache.record(path, path.stat(), (), read_at=now_ns())
    assert cache.lookup(path, path.stat()) is None


def test_a_file_replaced_after_its_stat_is_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x" * 100)
    info = path.stat()
    replacement = tmp_path / "new.bin"
    replacement.write_bytes(b"y" * 100)
    os.replace(replacement, path)
    cache = StatCache(tmp_path / "cache.sqlite")
    assert not cache.record(path, info, (), read_at=now_ns() + 10 * SETTLE_NS)


def test_a_copy_of_the_same_bytes_is_hashed_not_recalled(model: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, model)
    twin = tmp_path / "twin"
    shutil.copytree(model, twin)
    assert not cached(store, twin / "weights.bin")
    assert store_directory(store, twin) == manifest


def test_touch_says_whether_a_blob_is_stored(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    loose = store.put(b"loose")
    with store.batch():
        packed = store.put(b"packed")
    assert store.touch(loose) and store.touch(packed)
    missing = "sha256:" + "0" * 64
    assert not store.touch(missing)
    assert not store.exists(missing)


def test_store_gc_forgets_files_that_are_gone_or_changed(model: Path, tmp_path: Path) -> None:
    # Entries that can never match again (a deleted folder, an edited file) would otherwise
    # pile up with every folder stored; gc prunes them and keeps the live ones.
    store = LocalStore(tmp_path / "blobs")
    kept, gone, edited = model, tmp_path / "gone", tmp_path / "edited"
    for folder in (gone, edited):
        shutil.copytree(kept, folder)
    time.sleep(SETTLE_NS / 1e9 + 0.1)
    for folder in (kept, gone, edited):
        store_directory(store, folder)
        assert cached(store, folder / "weights.bin")
    shutil.rmtree(gone)
    with (edited / "weights.bin").open("r+b") as handle:
        handle.write(b"x")
    assert store.stat_cache().prune() == 2
    assert cached(store, kept / "weights.bin")
    assert store.stat_cache().prune() == 0
