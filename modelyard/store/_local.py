"""Blobs as read-only files under a folder: `<root>/sha256/ab/cd/<hex>`."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from modelyard.errors import (
    BlobNotFound,
    StorageFull,
    StoreAccessDenied,
    StoreBusy,
    StoreUnavailable,
)
from modelyard.store._digests import PREFIX, check_digest, verified
from modelyard.store._protocol import READ_SIZE, BlobInfo, BlobSource, iter_source


class LocalStore:
    """A content-addressed store in a local folder.

    Each blob is written to `<root>/tmp/` and renamed into place, so a crash never leaves a partial
    blob under its digest. With `fsync=True` the bytes also survive a power cut once `put` returns.

        >>> store = LocalStore("/tmp/blobs")
        >>> digest = store.put(b"weights")
    """

    def __init__(self, root: str | Path, *, fsync: bool = False) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._blob_root = str(self.root / "sha256")
        self._temp_root = str(self.root / "tmp")

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, digest: str) -> Path:
        """Where the blob with `digest` lives (or would live)."""
        return Path(self._file(digest))

    def _file(self, digest: str) -> str:
        hexdigest = check_digest(digest)[len(PREFIX) :]
        return f"{self._blob_root}/{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"

    def put(self, data: BlobSource, *, digest: str | None = None) -> str:
        if digest is not None and self._refresh(self._file(digest)):
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

    def get(self, digest: str) -> Iterator[bytes]:
        try:
            handle = self.path(digest).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        return verified(digest, _read_all(handle))

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def delete(self, digest: str) -> bool:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def blobs(self) -> Iterator[BlobInfo]:
        for path in Path(self._blob_root).glob("??/??/*"):
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            yield BlobInfo(digest=PREFIX + path.name, size=stat.st_size, modified=modified)

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
            if path.stat().st_mtime < cutoff:
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
