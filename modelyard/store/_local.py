"""Blobs under a folder: big ones as read-only files `<root>/sha256/ab/cd/<hex>`, small ones
written in a batch appended to pack files `<root>/packs/<id>.pack` (see `_packs`)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from modelyard.errors import (
    BlobNotFound,
    IntegrityError,
    StorageFull,
    StoreAccessDenied,
    StoreBusy,
    StoreUnavailable,
)
from modelyard.store._digests import PREFIX, check_digest, digest_bytes, verified
from modelyard.store._pack_writer import PACK_SIZE, PackWriter
from modelyard.store._packs import Location, Pack, PackIndex, unmap
from modelyard.store._packs import fsync_dir as _fsync_dir
from modelyard.store._protocol import READ_SIZE, BlobInfo, BlobSource, iter_source
from modelyard.store._repack import delete_packed
from modelyard.store._statcache import StatCache

SMALL_BLOB = 1 << 20
"""Blobs up to this size put in a batch go to packs. Creating a file costs 0.3-0.9 ms here, the
time to copy about a MiB: below this size it dominates; above it, a loose file costs little
more than its bytes, and gc never has to copy a big tensor to free its neighbours."""

Buffer = bytes | memoryview

TOUCH_EVERY = 1.0
"""Seconds between two refreshes of one pack's age by the same store (one per blob is waste).
Forgotten when a batch or `writing` starts, since a collection may have run in between."""


class LocalStore:
    """A content-addressed store in a local folder.

    Each blob is written to `<root>/tmp/` and renamed into place, so a crash never leaves a partial
    blob under its digest. With `fsync=True` the bytes also survive a power cut once `put` returns.

        >>> store = LocalStore("/tmp/blobs")
        >>> digest = store.put(b"weights")
    """

    def __init__(
        self, root: str | Path, *, fsync: bool = False, pack_size: int = PACK_SIZE
    ) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.pack_size = pack_size
        self._blob_root = str(self.root / "sha256")
        self._temp_root = str(self.root / "tmp")
        self._packs = PackIndex(self.root / "packs")
        self._writer: PackWriter | None = None
        self._batches = 0
        self._batch_lock = threading.Lock()
        self._touched: dict[str, float] = {}
        self._stat_cache = StatCache(self.root / "statcache.sqlite")

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, digest: str) -> Path:
        """Where the blob with `digest` lives (or would live)."""
        return Path(self._file(digest))

    def holder(self, digest: str) -> Path:
        """The file that holds the blob now: its own, or the pack it is in (whose age it has)."""
        location = self._packs.lookup(check_digest(digest), refresh=False)
        if location is None and not self.path(digest).exists():
            location = self._packs.lookup(digest)
        if location is not None and (pack := self._packs.pack(location.pack)) is not None:
            return pack.path
        if not self.path(digest).exists():
            raise BlobNotFound(digest)
        return self.path(digest)

    def _file(self, digest: str) -> str:
        hexdigest = check_digest(digest)[len(PREFIX) :]
        return f"{self._blob_root}/{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"

    def put(self, data: BlobSource, *, digest: str | None = None) -> str:
        if digest is not None and self._reuse(digest):
            return digest
        writer = self._writer
        if writer is not None and isinstance(data, bytes | bytearray | memoryview):
            if memoryview(data).nbytes <= SMALL_BLOB:
                if digest is None:
                    digest = digest_bytes(memoryview(data))
                    if self._reuse(digest):
                        return digest
                with self._errors("write"):
                    if writer.add(digest, data):
                        return digest
        with self._errors("write"):
            if digest is not None and isinstance(data, bytes | bytearray | memoryview):
                temp = self._write_known(data)  # the caller hashed it already: don't again
            else:
                temp, hexdigest = self._write_temp(data)
                digest = PREFIX + hexdigest
            try:
                self._publish(temp, self._file(digest))
            finally:
                if os.path.lexists(temp):
                    os.unlink(temp)
        return digest

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Pack the small blobs put inside (from any thread); publish them when it ends.

        A put inside returns before its blob is readable; every blob is published, and
        readable, once the `with` block exits (batches may nest or overlap).

            >>> with store.batch():
            ...     digests = [store.put(chunk) for chunk in chunks]
        """
        with self._batch_lock:
            if self._writer is None:
                self._writer = PackWriter(
                    temp_dir=self._temp_root,
                    folder=self._packs.folder,
                    fsync=self.fsync,
                    published=self._packs.add,
                    target=self.pack_size,
                )
            writer = self._writer
            self._batches += 1
            self._touched.clear()
        try:
            yield
        finally:
            with self._batch_lock:
                self._batches -= 1
                if self._batches == 0:
                    self._writer = None
                    writer.close()
            with self._errors("write"):
                writer.flush()

    def get(self, digest: str) -> Iterator[bytes]:
        location = self._packs.lookup(check_digest(digest), refresh=False)
        if location is None:
            try:
                handle = self.path(digest).open("rb")
            except FileNotFoundError:
                location = self._packs.lookup(digest)
                if location is None:
                    raise BlobNotFound(digest) from None
            else:
                return verified(digest, _read_all(handle))
        return verified(digest, [bytes(self._read_packed(digest, location))])

    def _read_packed(self, digest: str, location: Location, *, view: bool = False) -> Buffer:
        read = self._packs.view if view else self._packs.read
        try:
            return read(location)
        except FileNotFoundError:  # repacked under us: the blob lives on elsewhere, or is gone
            self._packs.refresh(force=True)
        moved = self._packs.lookup(digest, refresh=False)
        if moved is not None:
            try:
                return read(moved)
            except FileNotFoundError:
                pass
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    @contextmanager
    def mapped(self, digest: str) -> Iterator[bytes | memoryview]:
        """The whole blob, checked against its digest, without copying it: a view of its mapped
        file or pack, valid inside the `with` block (keep no slice of it past the block)."""
        location = self._packs.lookup(check_digest(digest), refresh=False)
        if location is None:
            try:
                fd = os.open(self._file(digest), os.O_RDONLY)
            except FileNotFoundError:
                location = self._packs.lookup(digest)
                if location is None:
                    raise BlobNotFound(digest) from None
            else:
                with _mapping(fd) as view:
                    yield _checked(digest, view)
                return
        data = self._read_packed(digest, location, view=True)
        try:
            yield _checked(digest, data)
        finally:
            if isinstance(data, memoryview):
                unmap(data)

    def touch(self, digest: str) -> bool:
        """Whether the blob is stored; if so its age restarts, as when a put reuses it."""
        return self._reuse(check_digest(digest))

    def stat_cache(self) -> StatCache:
        """How files were cut when stored here, so an unchanged file is not read again."""
        return self._stat_cache

    def exists(self, digest: str) -> bool:
        location = self._packs.lookup(check_digest(digest), refresh=False)
        if location is not None and self._packed(location):
            return True
        return self.path(digest).exists() or self._packs.lookup(digest) is not None

    def _packed(self, location: Location) -> bool:
        # The index may be older than a repack in another process: check the pack is there.
        if os.path.exists(self._packs.folder / location.pack):
            return True
        self._packs.refresh(force=True)
        return False

    def delete(self, digest: str) -> bool:
        return self.delete_many([digest]) == 1

    def delete_many(self, digests: Iterable[str]) -> int:
        """Delete blobs, loose or packed, rewriting each pack that holds some once; count them."""
        doomed = {check_digest(digest) for digest in digests}
        removed: set[str] = set()
        with self._errors("delete"):
            for digest in doomed:
                try:
                    os.unlink(self._file(digest))
                    removed.add(digest)
                except FileNotFoundError:
                    pass
            removed |= delete_packed(
                self._packs,
                doomed,
                new_writer=self._repack_writer,
                loose=lambda digest: os.path.exists(self._file(digest)),
                fsync=self.fsync,
            )
        return len(removed)

    def _repack_writer(self) -> PackWriter:
        return PackWriter(
            temp_dir=self._temp_root,
            folder=self._packs.folder,
            fsync=self.fsync,
            published=self._packs.add,
            target=self.pack_size,
        )

    def blobs(self) -> Iterator[BlobInfo]:
        found: dict[str, BlobInfo] = {}
        for path in Path(self._blob_root).glob("??/??/*"):
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            found[PREFIX + path.name] = BlobInfo(PREFIX + path.name, stat.st_size, modified)
        for pack in self._packs.packs():
            try:
                modified = datetime.fromtimestamp(pack.path.stat().st_mtime, UTC)
            except FileNotFoundError:
                continue
            for digest, location in pack.entries.items():
                other = found.get(digest)
                if other is None or other.modified < modified:  # the youngest copy's age
                    found[digest] = BlobInfo(digest, location.size, modified)
        yield from found.values()

    def _reuse(self, digest: str) -> bool:
        location = self._packs.lookup(check_digest(digest), careful=False)
        if location is not None and (pack := self._packs.pack(location.pack)) is not None:
            if self._touch(pack):
                return True
        return self._refresh(self._file(digest))

    def _touch(self, pack: Pack) -> bool:
        # A packed blob's age is its pack's: restart it as `_refresh` does a loose blob's.
        now = time.monotonic()
        if now - self._touched.get(pack.name, -TOUCH_EVERY) < TOUCH_EVERY:
            return True
        if not self._refresh(str(pack.path)):
            self._packs.refresh(force=True)
            return False
        self._touched[pack.name] = now
        return True

    def _refresh(self, final: str) -> bool:
        # A blob that is stored already is reused: its age restarts now, or a collection's
        # grace period (which spares young blobs) would not cover the version reusing it.
        try:
            os.utime(final)
        except FileNotFoundError:
            return False
        except PermissionError:  # another user's blob: still there, age left as it is
            return os.path.exists(final)
        return True

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold off garbage collection from the first `put` until the version is registered.

        Writers share `<root>/gc.lock`; a collection takes it exclusively while it reads the
        registry and deletes, so it never deletes a blob a write in flight has reused. The
        kernel drops the lock when its process dies, `kill -9` included.
        """
        with self._lock(fcntl.LOCK_SH, wait=None):
            self._touched.clear()  # a collection may have run since: check packs afresh
            yield

    @contextmanager
    def collecting(self, *, wait: float) -> Iterator[None]:
        """Exclude writers while a collection decides and deletes; `StoreBusy` after `wait` s."""
        with self._lock(fcntl.LOCK_EX, wait=wait):
            yield

    @contextmanager
    def _lock(self, mode: int, *, wait: float | None) -> Iterator[None]:
        with self._errors("lock"):
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _flock(fd, mode, wait=wait, root=self.root)
            yield
        finally:
            os.close(fd)  # releases the lock

    def remove_stale_temporaries(self, *, older_than: float) -> int:
        """Delete leftovers of interrupted writes older than `older_than` seconds; count them."""
        cutoff = time.time() - older_than
        removed = 0
        for path in (self.root / "tmp").glob("*"):
            try:
                stale = path.stat().st_mtime < cutoff
            except FileNotFoundError:  # published (renamed into place) meanwhile
                continue
            if stale:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _write_temp(self, data: BlobSource) -> tuple[str, str]:
        hasher = hashlib.sha256()
        temp, fd = self._open_temp()
        try:
            with os.fdopen(fd, "wb") as handle:
                for piece in iter_source(data):
                    hasher.update(piece)
                    handle.write(piece)
                self._sync(handle.fileno())
        except BaseException:
            os.unlink(temp)
            raise
        return temp, hasher.hexdigest()

    def _write_known(self, data: bytes | bytearray | memoryview) -> str:
        temp, fd = self._open_temp()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._sync(fd)
        except BaseException:
            os.unlink(temp)
            raise
        finally:
            os.close(fd)
        return temp

    def _open_temp(self) -> tuple[str, int]:
        # Created read-only (0o444): the open descriptor may still write, and the published
        # blob is never modified in place.
        temp = f"{self._temp_root}/put-{uuid.uuid4().hex}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            return temp, os.open(temp, flags, 0o444)
        except FileNotFoundError:
            os.makedirs(self._temp_root, exist_ok=True)
            return temp, os.open(temp, flags, 0o444)

    def _sync(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)

    def _publish(self, temp: str, final: str) -> None:
        if self._refresh(final):
            return
        try:
            os.replace(temp, final)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(temp, final)
        if self.fsync:
            _fsync_dir(Path(final).parent)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except PermissionError as error:
            raise StoreAccessDenied(
                f"cannot {action} blobs under {self.root}: permission denied ({error.filename}); "
                "fix the folder's owner or point MODELYARD_STORE_URL elsewhere"
            ) from error
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(
                    f"no space left under {self.root} to {action} a blob; free some space "
                    "(`modelyard store gc`) or point MODELYARD_STORE_URL at a larger volume"
                ) from error
            raise StoreUnavailable(f"cannot {action} blobs under {self.root}: {error}") from error


def _read_all(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while piece := handle.read(READ_SIZE):
            yield piece


@contextmanager
def _mapping(fd: int) -> Iterator[memoryview]:
    try:
        if os.fstat(fd).st_size == 0:  # an empty file cannot be mapped
            yield memoryview(b"")
            return
        region = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)  # the mapping keeps the file
    view = memoryview(region)
    try:
        yield view
    finally:
        view.release()
        with suppress(BufferError):  # a slice still alive: the mapping goes with the last one
            region.close()


def _checked(digest: str, data: bytes | memoryview) -> bytes | memoryview:
    actual = digest_bytes(data)
    if actual != digest:
        raise IntegrityError(digest, actual=actual)
    return data


def _flock(fd: int, mode: int, *, wait: float | None, root: Path) -> None:
    if wait is None:
        fcntl.flock(fd, mode)
        return
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"writes to {root} kept garbage collection waiting for {wait:g} s; run it "
                    "again later, or with a longer --wait-seconds"
                ) from None
            time.sleep(0.05)
