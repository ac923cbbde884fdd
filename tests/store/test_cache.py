"""FolderCache: restored once, checked on every open, restored again when anything changed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelyard.store import FolderCache, MemoryStore, store_directory
from modelyard.store._cache import _stats


class CountingStore(MemoryStore):
    """A MemoryStore that counts reads, to see which opens went back to the store."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, digest: str) -> Iterator[bytes]:
        self.reads += 1
        return super().get(digest)


@pytest.fixture
def stored(tmp_path: Path) -> tuple[CountingStore, str]:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "model.bin").write_bytes(bytes(range(256)) * 8)
    (source / "sub" / "config.json").write_text('{"a": 1}')
    (source / "link").symlink_to("model.bin")
    store = CountingStore()
    return store, store_directory(store, source).digest


def test_a_warm_unchanged_folder_is_not_read_again(
    tmp_path: Path, stored: tuple[CountingStore, str]
) -> None:
    store, digest = stored
    cache = FolderCache(tmp_path / "cache")
    folder = cache.open(store, digest)
    reads = store.reads
    assert cache.open(store, digest) == folder
    assert store.reads == reads  # the stats matched: no manifest, no blob fetched


def flip_byte(folder: Path) -> None:
    path = folder / "model.bin"
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    os.chmod(path, before.st_mode & 0o777)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def retarget(folder: Path) -> None:
    (folder / "link").unlink()
    (folder / "link").symlink_to("sub/config.json")


def chmod(folder: Path) -> None:
    os.chmod(folder / "sub" / "config.json", 0o777)


def remove(folder: Path) -> None:
    os.chmod(folder / "sub", 0o755)
    shutil.rmtree(folder / "sub")


def add(folder: Path) -> None:
    os.chmod(folder, 0o755)
    (folder / "sitecustomize.py").write_text("import os\n")


def truncate(folder: Path) -> None:
    os.chmod(folder / "model.bin", 0o644)
    os.truncate(folder / "model.bin", 10)


def grow(folder: Path) -> None:
    os.chmod(folder / "sub" / "config.json", 0o644)
    with (folder / "sub" / "config.json").open("a") as handle:
        handle.write(" ")


def replace_with_folder(folder: Path) -> None:
    os.chmod(folder, 0o755)
    (folder / "model.bin").unlink()
    (folder / "model.bin").mkdir()


@pytest.mark.parametrize(
    "change", [flip_byte, retarget, chmod, remove, add, truncate, grow, replace_with_folder]
)
@pytest.mark.parametrize("fresh", [False, True], ids=["same-process", "new-process"])
def test_any_change_is_restored(
    tmp_path: Path, stored: tuple[CountingStore, str], change: Callable[[Path], None], fresh: bool
) -> None:
    store, digest = stored
    cache = FolderCache(tmp_path / "cache")
    folder = cache.open(store, digest)
    snapshot = {p.relative_to(folder): p.lstat().st_mode for p in folder.rglob("*")}
    original = (folder / "model.bin").read_bytes()
    change(folder)
    if fresh:
        cache = FolderCache(tmp_path / "cache")
    assert cache.open(store, digest) == folder
    assert (folder / "model.bin").read_bytes() == original
    assert os.readlink(folder / "link") == "model.bin"
    assert {p.relative_to(folder): p.lstat().st_mode for p in folder.rglob("*")} == snapshot
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # nothing left aside


@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_a_change_in_any_chunk_of_a_large_file_is_found(tmp_path: Path, where: float) -> None:
    # Several MiB of random bytes: dozens of chunks, hashed by several threads at a new open.
    source = tmp_path / "source"
    source.mkdir()
    data = bytearray(os.urandom(5 << 20))
    (source / "weights.bin").write_bytes(bytes(data))
    store = CountingStore()
    digest = store_directory(store, source).digest
    folder = FolderCache(tmp_path / "cache").open(store, digest)
    assert FolderCache(tmp_path / "cache").open(store, digest) == folder  # unchanged: kept
    data[int(where * len(data))] ^= 1
    mode = (folder / "weights.bin").stat().st_mode & 0o777
    os.chmod(folder / "weights.bin", 0o644)
    (folder / "weights.bin").write_bytes(bytes(data))
    os.chmod(folder / "weights.bin", mode)  # only the content differs
    reads = store.reads
    assert FolderCache(tmp_path / "cache").open(store, digest) == folder
    assert store.reads > reads  # restored from the store
    assert (folder / "weights.bin").read_bytes() == (source / "weights.bin").read_bytes()


def key() -> bytes:
    return b"k" * 32


def test_a_mark_spares_a_new_process_the_hashing(
    tmp_path: Path, stored: tuple[CountingStore, str]
) -> None:
    store, digest = stored
    folder = FolderCache(tmp_path / "cache", key=key).open(store, digest)
    reads = store.reads
    assert FolderCache(tmp_path / "cache", key=key).open(store, digest) == folder
    assert store.reads == reads  # the mark vouched for the stats: no manifest fetched
    assert FolderCache(tmp_path / "cache").open(store, digest) == folder  # no key: hashed
    assert store.reads > reads


@pytest.mark.parametrize("change", [flip_byte, truncate, chmod, retarget])
def test_a_marked_folder_that_changed_is_restored(
    tmp_path: Path, stored: tuple[CountingStore, str], change: Callable[[Path], None]
) -> None:
    store, digest = stored
    folder = FolderCache(tmp_path / "cache", key=key).open(store, digest)
    original = (folder / "model.bin").read_bytes()
    change(folder)
    assert FolderCache(tmp_path / "cache", key=key).open(store, digest) == folder
    assert (folder / "model.bin").read_bytes() == original
    assert os.readlink(folder / "link") == "model.bin"


def test_a_forged_or_moved_mark_is_not_believed(
    tmp_path: Path, stored: tuple[CountingStore, str]
) -> None:
    store, digest = stored
    folder = FolderCache(tmp_path / "cache", key=key).open(store, digest)
    original = (folder / "model.bin").read_bytes()
    mark = tmp_path / "cache" / ".marks" / f"{folder.name}.json"
    flip_byte(folder)
    # A writer of the cache, without the key, records the changed stats under a MAC of its own.
    FolderCache(tmp_path / "forger", key=lambda: b"guess").open(store, digest)
    forged = FolderCache(tmp_path / "forger", key=lambda: b"guess")
    forged._record(folder, digest, _stats(folder))
    shutil.copyfile(tmp_path / "forger" / ".marks" / f"{folder.name}.json", mark)
    assert FolderCache(tmp_path / "cache", key=key).open(store, digest) == folder
    assert (folder / "model.bin").read_bytes() == original
    # A genuine mark of another version, copied over this one's, is not believed either.
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.bin").write_bytes(b"x")
    elsewhere = store_directory(store, other).digest
    FolderCache(tmp_path / "cache", key=key).open(store, elsewhere)
    flip_byte(folder)
    shutil.copyfile(mark.with_name(f"{elsewhere.replace(':', '-')}.json"), mark)
    assert FolderCache(tmp_path / "cache", key=key).open(store, digest) == folder
    assert (folder / "model.bin").read_bytes() == original
