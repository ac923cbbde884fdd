"""Store a folder as blobs plus a manifest, and rebuild it byte for byte from them."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, nullcontext
from itertools import accumulate
from pathlib import Path
from typing import Protocol, runtime_checkable

from modelyard.errors import InvalidManifest, ModelyardError
from modelyard.store._chunking import IN_MEMORY_LIMIT, Piece, cut_file, read_span
from modelyard.store._digests import digest_bytes
from modelyard.store._manifests import Chunk, Entry, Manifest, check_link, load_manifest
from modelyard.store._manifests import save_manifest as _save_manifest
from modelyard.store._pipeline import InlineExecutor, ordered_map
from modelyard.store._protocol import BlobStore
from modelyard.store._statcache import StatCache, now_ns

WORKERS = 4
"""Threads that hash and transfer blobs; hashing and I/O release the GIL."""

SMALL_FOLDER = 4 << 20
"""Folders smaller than this are stored on the caller's thread."""

GROUP_BYTES = 1 << 20
"""Pieces are handed to the threads in groups of about this many bytes."""


def store_directory(
    store: BlobStore,
    source: str | Path,
    *,
    workers: int = WORKERS,
    progress: Callable[[int], None] | None = None,
) -> Manifest:
    """Store every file under `source` and its manifest; return the manifest. `progress` is
    told each count of bytes stored (or found stored already).

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
    cache = store.stat_cache() if isinstance(store, _Local) else None
    # Every blob is published when the batch ends, before the manifest that names them is saved.
    with (
        _batch(store),
        InlineExecutor() if small else ThreadPoolExecutor(workers, "modelyard-put") as pool,
    ):
        entries = [_entry(store, root, path, pool, workers, cache, progress) for path in paths]
    manifest = Manifest(entries=tuple(sorted(entries, key=lambda entry: entry.path)))
    _save_manifest(store, manifest)
    return manifest


@runtime_checkable
class _Batching(Protocol):
    def batch(self) -> AbstractContextManager[None]: ...


@runtime_checkable
class _Local(Protocol):
    """A store on this machine (LocalStore): it takes views of a mapped file without copying,
    hands out its blobs mapped, and remembers the files it has stored."""

    def mapped(self, digest: str) -> AbstractContextManager[bytes | memoryview]: ...

    def touch(self, digest: str) -> bool: ...

    def stat_cache(self) -> StatCache: ...


def _batch(store: BlobStore) -> AbstractContextManager[None]:
    # A store that packs small blobs (LocalStore) does it for puts inside its batch.
    return store.batch() if isinstance(store, _Batching) else nullcontext()


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(directory)
        for name in sorted(dirnames + filenames):
            yield base / name


def _entry(
    store: BlobStore,
    root: Path,
    path: Path,
    pool: Executor,
    workers: int,
    cache: StatCache | None,
    progress: Callable[[int], None] | None = None,
) -> Entry:
    relative = path.relative_to(root).as_posix()
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode) & 0o777
    if stat.S_ISLNK(info.st_mode):
        return _link_entry(root, path, relative)
    if stat.S_ISDIR(info.st_mode):
        return Entry(path=relative, type="dir", mode=mode)
    if not stat.S_ISREG(info.st_mode):
        raise ModelyardError(f"{path} is not a regular file, folder or symlink; remove it first")
    chunks = _recalled(store, cache, path, info)
    if chunks is not None and progress is not None:
        progress(info.st_size)
    if chunks is None:
        read_at = now_ns()
        chunks = _store_file(store, path, info.st_size, pool, workers, progress)
        if sum(chunk.size for chunk in chunks) != info.st_size:
            raise ModelyardError(f"{path} changed while it was being stored; store it again")
        if cache is not None:
            cache.record(path, info, chunks, read_at=read_at)
    return Entry(path=relative, mode=mode, size=info.st_size, chunks=chunks)


def _recalled(
    store: BlobStore, cache: StatCache | None, path: Path, info: os.stat_result
) -> tuple[Chunk, ...] | None:
    # An unchanged file's recorded chunks, if every one is still stored (and now younger).
    if cache is None or not isinstance(store, _Local):
        return None
    chunks = cache.lookup(path, info)
    if chunks is None or not all(store.touch(chunk.digest) for chunk in chunks):
        return None
    return chunks


def _store_file(
    store: BlobStore,
    path: Path,
    size: int,
    pool: Executor,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[Chunk, ...]:
    # The source is read, not mapped: a file truncated by its writer while it is stored (a
    # checkpoint saved again) would kill a process reading a mapping past the new end with
    # SIGBUS, where a read just comes up short and the put fails with a clear error. Measured,
    # mapping the source saved about 4% of a put.
    chunks: list[Chunk] = []
    with path.open("rb") as handle:
        put = _PiecePut(store, path)
        pieces = cut_file(path, handle, size)
        for group in ordered_map(put, _groups(pieces), pool=pool, window=2 * workers):
            chunks.extend(group)
            if progress is not None:
                progress(sum(chunk.size for chunk in group))
    return tuple(chunks)


def _groups(pieces: Iterable[Piece]) -> Iterator[list[Piece]]:
    # A task per 64 KiB chunk costs the main thread more than cutting it: hand out about a MiB.
    group: list[Piece] = []
    size = 0
    for piece in pieces:
        group.append(piece)
        size += piece.span.size
        if size >= GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


class _PiecePut:
    """Puts pieces of `path`: each in-memory piece as the bytes that were hashed, a piece too big
    to hold in memory streamed from its own handle (the store hashes what it writes)."""

    def __init__(self, store: BlobStore, path: Path) -> None:
        self.store = store
        self.path = path

    def __call__(self, pieces: list[Piece]) -> list[Chunk]:
        return [self._put(piece) for piece in pieces]

    def _put(self, piece: Piece) -> Chunk:
        span, data = piece.span, piece.data
        if data is not None:
            digest = self.store.put(data, digest=digest_bytes(data))
        else:
            with self.path.open("rb") as handle:
                digest = self.store.put(read_span(handle, span))
        # Built without validation: the digest is the store's own answer, the span the cutter's.
        return Chunk.model_construct(digest=digest, size=span.size, name=span.name)


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
    store: BlobStore,
    manifest: Manifest | str,
    target: str | Path,
    *,
    workers: int = WORKERS,
    progress: Callable[[int], None] | None = None,
) -> Manifest:
    """Rebuild the folder a manifest (or its digest) describes at `target`, which must be absent
    or empty. The folder appears whole or not at all. `progress` is told each count of bytes
    written."""
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
            _fill(store, manifest, staging, pool, window=4 * workers, progress=progress)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _fill(
    store: BlobStore,
    manifest: Manifest,
    staging: Path,
    pool: Executor,
    *,
    window: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    # Files and folders first, symlinks last: no write can then pass through a symlink.
    for entry in manifest.entries:
        path = staging / entry.path
        if entry.type == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif entry.type == "file":
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_file(store, entry, path, pool, window=window, progress=progress)
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


def _write_file(
    store: BlobStore,
    entry: Entry,
    path: Path,
    pool: Executor,
    *,
    window: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    # Every chunk's place in the file is known from the sizes before it, so chunks are read,
    # checked and written in parallel, each straight to its place.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _allocate(fd, entry.size)
        starts = accumulate((chunk.size for chunk in entry.chunks), initial=0)
        placed = zip(entry.chunks, starts, strict=False)  # starts has one more: the end
        for written in ordered_map(_ChunkWrite(store, fd), _spread(placed), pool=pool,
                                   window=window):  # fmt: skip
            if progress is not None:
                progress(written)
    finally:
        os.close(fd)


def _allocate(fd: int, size: int) -> None:
    # Reserving the blocks first makes the writes at scattered offsets cheaper.
    try:
        if size:
            os.posix_fallocate(fd, 0, size)
    except OSError:  # not supported here: a sparse file of the right size does as well
        os.ftruncate(fd, size)


def _spread(placed: Iterable[tuple[Chunk, int]]) -> Iterator[list[tuple[Chunk, int]]]:
    group: list[tuple[Chunk, int]] = []
    size = 0
    for chunk, start in placed:
        group.append((chunk, start))
        size += chunk.size
        if size >= GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


class _ChunkWrite:
    """Writes groups of consecutive chunks, each checked against its digest as it is read, at
    their offsets in `fd`. From a local store, the chunks that fit in memory are read mapped
    and written with one system call per run; the others stream in verified pieces."""

    def __init__(self, store: BlobStore, fd: int) -> None:
        self.store = store
        self.fd = fd
        self.local = store if isinstance(store, _Local) else None

    def __call__(self, group: list[tuple[Chunk, int]]) -> int:
        with ExitStack() as stack:
            run: list[bytes | memoryview] = []
            at = 0
            for chunk, start in group:
                if self.local is None or chunk.size > IN_MEMORY_LIMIT:
                    if run:
                        _pwritev(self.fd, run, at)
                        run = []
                    self._stream(chunk, start)
                    continue
                data = stack.enter_context(self.local.mapped(chunk.digest))
                _check_size(chunk, memoryview(data).nbytes)
                at = at if run else start
                run.append(data)
            if run:
                _pwritev(self.fd, run, at)
        return sum(chunk.size for chunk, _ in group)

    def _stream(self, chunk: Chunk, start: int) -> None:
        written = 0
        for piece in self.store.get(chunk.digest):
            written += _pwrite(self.fd, piece, start + written)
        _check_size(chunk, written)


def _check_size(chunk: Chunk, size: int) -> None:
    if size != chunk.size:
        raise InvalidManifest(
            f"blob {chunk.digest} holds {size} bytes, not the {chunk.size} its manifest says"
        )


def _pwritev(fd: int, pieces: list[bytes | memoryview], offset: int) -> None:
    written = os.pwritev(fd, pieces, offset) if len(pieces) <= 512 else 0
    if written < sum(memoryview(piece).nbytes for piece in pieces):  # short: finish one by one
        for piece in pieces:
            size = memoryview(piece).nbytes
            if written >= size:
                written -= size
            else:
                _pwrite(fd, memoryview(piece)[written:], offset + written)
                written = 0
            offset += size


def _pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
    view = memoryview(data)
    total = view.nbytes
    while view:
        step = os.pwrite(fd, view, offset)
        view, offset = view[step:], offset + step
    return total
