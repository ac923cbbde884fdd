"""Store a folder as blobs plus a manifest, and rebuild it byte for byte from them."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol, runtime_checkable

from modelyard.errors import InvalidManifest, ModelyardError
from modelyard.store._chunking import IN_MEMORY_LIMIT, Piece, cut_file, read_span
from modelyard.store._digests import digest_bytes
from modelyard.store._manifests import Chunk, Entry, Manifest, check_link, load_manifest
from modelyard.store._manifests import save_manifest as _save_manifest
from modelyard.store._pipeline import InlineExecutor, ordered_map
from modelyard.store._protocol import BlobStore, read_bytes

WORKERS = 4
"""Threads that hash and transfer blobs; hashing and I/O release the GIL."""

SMALL_FOLDER = 4 << 20
"""Folders smaller than this are stored on the caller's thread."""


def store_directory(store: BlobStore, source: str | Path, *, workers: int = WORKERS) -> Manifest:
    """Store every file under `source` and its manifest; return the manifest.

    >>> manifest = store_directory(store, "model/")
    >>> manifest.digest
    'sha256:…'
    """
    root = Path(source)
    if not root.is_dir():
        raise ModelyardError(f"{root} is not a folder")
    paths = list(_walk(root))
    # Threads pay off for big folders; for a few small files, starting them costs more.
    small = sum(path.lstat().st_size for path in paths) < SMALL_FOLDER
    # Every blob is published when the batch ends, before the manifest that names them is saved.
    with (
        _batch(store),
        InlineExecutor() if small else ThreadPoolExecutor(workers, "modelyard-put") as pool,
    ):
        entries = [_entry(store, root, path, pool, workers) for path in paths]
    manifest = Manifest(entries=tuple(sorted(entries, key=lambda entry: entry.path)))
    _save_manifest(store, manifest)
    return manifest


@runtime_checkable
class _Batching(Protocol):
    def batch(self) -> AbstractContextManager[None]: ...


def _batch(store: BlobStore) -> AbstractContextManager[None]:
    # A store that packs small blobs (LocalStore) does it for puts inside its batch.
    return store.batch() if isinstance(store, _Batching) else nullcontext()


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(directory)
        for name in sorted(dirnames + filenames):
            yield base / name


def _entry(store: BlobStore, root: Path, path: Path, pool: Executor, workers: int) -> Entry:
    relative = path.relative_to(root).as_posix()
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode) & 0o777
    if stat.S_ISLNK(info.st_mode):
        return _link_entry(root, path, relative)
    if stat.S_ISDIR(info.st_mode):
        return Entry(path=relative, type="dir", mode=mode)
    if not stat.S_ISREG(info.st_mode):
        raise ModelyardError(f"{path} is not a regular file, folder or symlink; remove it first")
    with path.open("rb") as handle:
        pieces = cut_file(path, handle, info.st_size)
        put = _PiecePut(store, path)
        chunks = tuple(ordered_map(put, pieces, pool=pool, window=4 * workers))
    if sum(chunk.size for chunk in chunks) != info.st_size:
        raise ModelyardError(f"{path} changed while it was being stored; store it again")
    return Entry(path=relative, mode=mode, size=info.st_size, chunks=chunks)


class _PiecePut:
    """Puts one piece of `path`; one too big to hold in memory streams from its own handle."""

    def __init__(self, store: BlobStore, path: Path) -> None:
        self.store = store
        self.path = path

    def __call__(self, piece: Piece) -> Chunk:
        span = piece.span
        if piece.data is not None:
            digest = self.store.put(piece.data, digest=digest_bytes(piece.data))
        else:
            with self.path.open("rb") as handle:
                digest = self.store.put(read_span(handle, span))
        return Chunk(digest=digest, size=span.size, name=span.name)


def _link_entry(root: Path, path: Path, relative: str) -> Entry:
    target = os.readlink(path)
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(root.resolve()):
        raise InvalidManifest(f"symlink {relative} -> {target} points outside {root}")
    try:
        check_link(relative, target)
    except ValueError as error:
        raise InvalidManifest(str(error)) from None
    return Entry(path=relative, type="symlink", mode=0o777, target=target)


def restore_directory(
    store: BlobStore, manifest: Manifest | str, target: str | Path, *, workers: int = WORKERS
) -> Manifest:
    """Rebuild the folder a manifest (or its digest) describes at `target`, which must be absent
    or empty. The folder appears whole or not at all."""
    if isinstance(manifest, str):
        manifest = load_manifest(store, manifest)
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ModelyardError(f"{target} already exists and is not an empty folder")
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        small = manifest.size < SMALL_FOLDER
        with InlineExecutor() if small else ThreadPoolExecutor(workers, "modelyard-get") as pool:
            _fill(store, manifest, staging, pool, window=4 * workers)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _fill(
    store: BlobStore, manifest: Manifest, staging: Path, pool: Executor, *, window: int
) -> None:
    # Files and folders first, symlinks last: no write can then pass through a symlink.
    for entry in manifest.entries:
        path = staging / entry.path
        if entry.type == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif entry.type == "file":
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_file(store, entry, path, pool, window=window)
    for entry in manifest.entries:
        if entry.type == "symlink":
            path = staging / entry.path
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(entry.target or "", path)
    real = staging.resolve()
    for entry in manifest.entries:
        if entry.type == "symlink" and not Path(
            os.path.realpath(staging / entry.path)
        ).is_relative_to(real):
            raise InvalidManifest(
                f"symlink {entry.path} -> {entry.target} points outside the folder"
            )
    for entry in reversed(manifest.entries):  # children before parents, so folders stay writable
        if entry.type != "symlink":
            os.chmod(staging / entry.path, entry.mode)


def _write_file(store: BlobStore, entry: Entry, path: Path, pool: Executor, *, window: int) -> None:
    def fetch(chunk: Chunk) -> bytes | None:
        # Small chunks are fetched ahead in parallel; a big one streams when its turn comes.
        return read_bytes(store, chunk.digest) if chunk.size <= IN_MEMORY_LIMIT else None

    with path.open("wb") as handle:
        fetched = ordered_map(fetch, entry.chunks, pool=pool, window=window)
        for chunk, data in zip(entry.chunks, fetched, strict=True):
            if data is not None:
                handle.write(data)
            else:
                for piece in store.get(chunk.digest):
                    handle.write(piece)
