from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import BlobNotFound, IntegrityError, InvalidManifest, ModelyardError
from modelyard.store import (
    BlobStore,
    Entry,
    LocalStore,
    Manifest,
    MemoryStore,
    restore_directory,
    save_manifest,
    store_directory,
)

from .test_chunking import safetensors_bytes


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "config.json").write_text('{"layers": 2}')
    (root / "weights.bin").write_bytes(np.random.default_rng(0).bytes(3 << 20))
    (root / "model.safetensors").write_bytes(
        safetensors_bytes({"w": b"\x01" * 1000, "b": b"\x02" * 10})
    )
    (root / "sub" / "deep" / "notes.txt").write_text("hello")
    (root / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (root / "sub" / "run.sh").chmod(0o755)
    (root / "sub" / "locked.txt").write_text("ro")
    (root / "sub" / "locked.txt").chmod(0o400)
    (root / "empty.bin").write_bytes(b"")
    os.symlink("sub/deep/notes.txt", root / "notes-link")
    os.symlink("deep", root / "sub" / "deep-link")
    return root


def same_tree(a: Path, b: Path) -> None:
    result = subprocess.run(
        ["diff", "-r", "--no-dereference", a, b], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    for path in a.rglob("*"):
        twin = b / path.relative_to(a)
        assert path.lstat().st_mode == twin.lstat().st_mode, path


def test_round_trip_is_byte_for_byte(store: BlobStore, model_dir: Path, tmp_path: Path) -> None:
    manifest = store_directory(store, model_dir)
    restored = restore_directory(store, manifest.digest, tmp_path / "copy")
    assert restored == manifest
    same_tree(model_dir, tmp_path / "copy")


def test_manifest_lists_every_path_sorted(model_dir: Path) -> None:
    manifest = store_directory(MemoryStore(), model_dir)
    paths = [entry.path for entry in manifest.entries]
    assert paths == sorted(paths)
    kinds = {entry.path: entry.type for entry in manifest.entries}
    assert kinds["empty"] == "dir"
    assert kinds["notes-link"] == "symlink"
    assert kinds["weights.bin"] == "file"
    tensors = next(e for e in manifest.entries if e.path == "model.safetensors")
    assert [chunk.name for chunk in tensors.chunks] == ["__header__", "w", "b"]


def test_same_folder_gives_same_digest(model_dir: Path) -> None:
    store = MemoryStore()
    assert store_directory(store, model_dir).digest == store_directory(store, model_dir).digest


def test_restore_into_empty_existing_folder(model_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    manifest = store_directory(store, model_dir)
    (tmp_path / "target").mkdir()
    restore_directory(store, manifest, tmp_path / "target")
    same_tree(model_dir, tmp_path / "target")


def test_restore_refuses_non_empty_target(model_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    manifest = store_directory(store, model_dir)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ModelyardError, match="not an empty folder"):
        restore_directory(store, manifest, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_failed_restore_leaves_nothing(model_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    manifest = store_directory(store, model_dir)
    victim = next(e for e in manifest.entries if e.path == "weights.bin").chunks[3].digest
    store.delete(victim)
    with pytest.raises(BlobNotFound, match=victim):
        restore_directory(store, manifest, tmp_path / "copy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_corrupt_chunk_fails_the_restore(model_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    manifest = store_directory(store, model_dir)
    victim = next(e for e in manifest.entries if e.path == "config.json").chunks[0].digest
    store.corrupt(victim, b'{"layers": 3}')
    with pytest.raises(IntegrityError, match=victim):
        restore_directory(store, manifest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_store_refuses_symlink_escaping_the_folder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    os.symlink("/etc/passwd", tmp_path / "model" / "passwd")
    with pytest.raises(InvalidManifest, match="points outside"):
        store_directory(MemoryStore(), tmp_path / "model")


def test_store_refuses_relative_symlink_escaping_the_folder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "secret").write_text("x")
    os.symlink("../secret", tmp_path / "model" / "secret")
    with pytest.raises(InvalidManifest, match="points outside"):
        store_directory(MemoryStore(), tmp_path / "model")


def test_store_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelyardError, match="is not a folder"):
        store_directory(MemoryStore(), tmp_path / "nope")


def test_store_refuses_special_files(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    os.mkfifo(tmp_path / "model" / "pipe")
    with pytest.raises(ModelyardError, match="not a regular file"):
        store_directory(MemoryStore(), tmp_path / "model")


def test_restore_refuses_symlink_chain_escaping_the_folder(tmp_path: Path) -> None:
    # Each link looks harmless on its own: `up` -> `.` and `escape` -> `up/..`. Together they
    # climb out, which only resolving the links on disk reveals.
    store = MemoryStore()
    manifest = Manifest(
        entries=(
            Entry(path="escape", type="symlink", mode=0o777, target="up/.."),
            Entry(path="up", type="symlink", mode=0o777, target="."),
        )
    )
    save_manifest(store, manifest)
    with pytest.raises(InvalidManifest, match="escape -> up/.. points outside"):
        restore_directory(store, manifest.digest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_ten_variants_dedup_to_about_one_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    names = [f"layer{i}.weight" for i in range(40)]
    base = {name: rng.bytes(25_000) for name in names}
    store = LocalStore(tmp_path / "blobs")
    model_size = 0
    for variant in range(10):
        tensors = dict(base)
        for name in rng.choice(names, size=2, replace=False):  # 5% of the tensors
            tensors[str(name)] = rng.bytes(25_000)
        folder = tmp_path / f"variant{variant}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors))
        model_size = store_directory(store, folder).size
    stored = sum(info.size for info in store.blobs())
    assert stored / model_size < 1.6
