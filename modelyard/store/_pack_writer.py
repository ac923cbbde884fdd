"""Write packs: small blobs appended from any number of threads, published when full or flushed."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.errors import StoreUnavailable
from modelyard.store._digests import PREFIX
from modelyard.store._packs import (
    ENTRY,
    MAGIC,
    RECORD,
    TRAILER,
    TRAILER_MAGIC,
    Location,
    Pack,
    fsync_dir,
)

PACK_SIZE = 64 << 20
"""A pack is published once it holds this many bytes (or when its batch ends)."""


def _pwrite_all(fd: int, pieces: list[bytes | bytearray | memoryview], offset: int) -> None:
    total = sum(len(piece) for piece in pieces)
    written = os.pwritev(fd, pieces, offset)
    if written < total:  # rare on regular files; finish piece by piece
        rest = memoryview(b"".join(bytes(piece) for piece in pieces))[written:]
        offset += written
        while rest:
            step = os.pwrite(fd, rest, offset)
            rest, offset = rest[step:], offset + step


@dataclass(eq=False, slots=True)
class _Filling:
    """A pack being written under `<root>/tmp/`."""

    temp: str
    fd: int
    size: int = len(MAGIC)
    entries: list[tuple[bytes, int, int]] = field(default_factory=list)
    writing: int = 0
    full: bool = False
    broken: bool = False


class PackWriter:
    """Appends small blobs to packs from any number of threads; publishes full packs.

    A writer reserves its record's bytes under a lock and writes them outside it, so threads
    hashing and writing different blobs overlap. A pack is published by whoever finishes its
    last write once it is full, or by `flush`.
    """

    def __init__(
        self,
        *,
        temp_dir: str,
        folder: Path,
        fsync: bool,
        published: Callable[[Pack], None],
        target: int = PACK_SIZE,
    ) -> None:
        self.temp_dir = temp_dir
        self.folder = folder
        self.fsync = fsync
        self.target = target
        self._published = published
        self._filling: _Filling | None = None
        self._unpublished: list[_Filling] = []
        self._pending: set[bytes] = set()
        self._closed = False
        self._failed = False  # a pack was lost: blobs whose put returned are not stored
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def add(self, digest: str, data: bytes | bytearray | memoryview) -> bool:
        """Append one blob (once per digest); it is readable once its pack is published.

        Returns False, writing nothing, once the writer is closed.
        """
        raw = bytes.fromhex(digest[len(PREFIX) :])
        size = memoryview(data).nbytes
        with self._lock:
            if self._closed:
                return False
            if raw in self._pending:
                return True
            filling = self._filling or self._start()
            offset = filling.size
            filling.size += RECORD.size + size
            filling.entries.append((raw, offset + RECORD.size, size))
            filling.writing += 1
            self._pending.add(raw)
            if filling.size >= self.target:
                filling.full = True
                self._filling = None
        try:
            _pwrite_all(filling.fd, [RECORD.pack(raw, size), data], offset)
        except BaseException:
            filling.broken = True
            raise
        finally:
            with self._lock:
                filling.writing -= 1
                ready = filling.full and filling.writing == 0 and filling in self._unpublished
                if ready:
                    self._unpublished.remove(filling)
                self._idle.notify_all()
        if ready:
            self._finish(filling)
        return True

    def close(self) -> None:
        """Accept no more blobs (`add` returns False); `flush` publishes what was added."""
        with self._lock:
            self._closed = True

    def flush(self) -> None:
        """Publish every pack with blobs in it, once the writes in flight have landed."""
        with self._lock:
            self._idle.wait_for(lambda: all(f.writing == 0 for f in self._unpublished))
            fillings, self._unpublished, self._filling = self._unpublished, [], None
        for filling in fillings:
            if filling.entries:
                self._finish(filling)
            else:
                _discard(filling)
        if self._failed:
            raise StoreUnavailable(
                f"a write to a pack under {self.folder} failed, so some blobs of this batch "
                "were not stored; store them again"
            )

    def _start(self) -> _Filling:
        temp = f"{self.temp_dir}/pack-{uuid.uuid4().hex}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(temp, flags, 0o444)
        except FileNotFoundError:
            os.makedirs(self.temp_dir, exist_ok=True)
            fd = os.open(temp, flags, 0o444)
        os.pwrite(fd, MAGIC, 0)
        filling = _Filling(temp=temp, fd=fd)
        self._filling = filling
        self._unpublished.append(filling)
        return filling

    def _finish(self, filling: _Filling) -> None:
        if filling.broken:
            self._failed = True
            _discard(filling)
            return
        try:
            index = b"".join(ENTRY.pack(*entry) for entry in filling.entries)
            trailer = TRAILER.pack(
                filling.size, len(filling.entries), hashlib.sha256(index).digest(), TRAILER_MAGIC
            )
            _pwrite_all(filling.fd, [index, trailer], filling.size)
            if self.fsync:
                os.fsync(filling.fd)
        except BaseException:
            self._failed = True
            _discard(filling)
            raise
        os.close(filling.fd)
        final = self.folder / f"{uuid.uuid4().hex}.pack"
        try:
            _rename(filling.temp, final)
        except BaseException:
            self._failed = True
            raise
        if self.fsync:
            fsync_dir(self.folder)
        entries = {
            PREFIX + raw.hex(): Location(final.name, offset, size)
            for raw, offset, size in filling.entries
        }
        self._published(Pack(final, entries))


def _rename(temp: str, final: Path) -> None:
    try:
        os.replace(temp, final)
    except FileNotFoundError:
        if not os.path.exists(temp):
            raise  # removed under us (a stale-temporaries sweep): the pack is lost
        os.makedirs(final.parent, exist_ok=True)
        os.replace(temp, final)


def _discard(filling: _Filling) -> None:
    os.close(filling.fd)
    try:
        os.unlink(filling.temp)
    except FileNotFoundError:
        pass
