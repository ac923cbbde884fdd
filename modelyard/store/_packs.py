"""Pack files: many small blobs in one file, so a store of 64 KiB chunks is not a million files.

One pack is one file, `<root>/packs/<id>.pack`, written under `<root>/tmp/` and renamed into
place, so the blobs and their index appear together or not at all (restic's layout, in one file):

    b"MYPACK1\\n"
    record*   = digest (32 bytes) | size (u64 LE) | bytes
    index     = (digest (32) | offset (u64) | size (u64))*    offsets point at the bytes
    trailer   = index offset (u64) | count (u64) | sha256(index) (32) | b"MYPACKIX"

A torn or corrupt index (its checksum fails) is rebuilt by reading the records, each checked
against its digest, up to the first one that is not whole; reads verify every blob's digest.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from modelyard.store._digests import PREFIX

MAGIC = b"MYPACK1\n"
TRAILER_MAGIC = b"MYPACKIX"
RECORD = struct.Struct("<32sQ")
ENTRY = struct.Struct("<32sQQ")
TRAILER = struct.Struct("<QQ32s8s")

OPEN_PACKS = 128
"""Packs kept open for reading at once; older ones are closed when no read holds them."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where a packed blob's bytes are."""

    pack: str
    offset: int
    size: int


class _Handle:
    """An open descriptor, closed once nothing holds it: a read in flight on another thread
    keeps it open even after the index has closed or dropped its pack."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)


class Pack:
    """A published pack: its path, its blobs and, while it is read, an open descriptor."""

    def __init__(self, path: Path, entries: dict[str, Location]) -> None:
        self.path = path
        self.name = path.name
        self.entries = entries
        self._handle: _Handle | None = None
        self._lock = threading.Lock()

    def read(self, location: Location) -> bytes:
        """The bytes at `location`; `FileNotFoundError` if the pack was deleted before opening."""
        with self._lock:
            if self._handle is None:
                self._handle = _Handle(self.path)
            handle = self._handle
        return pread_all(handle.fd, location.size, location.offset)

    def view(self, location: Location) -> memoryview:
        """The bytes at `location` without a copy: a view of the pages holding them, mapped
        read-only for this read (`unmap` it when done, which drops them from the process's
        memory). Packs are never modified once published, so the mapping stays valid."""
        with self._lock:
            if self._handle is None:
                self._handle = _Handle(self.path)
            handle = self._handle
        end = location.offset + location.size
        if os.fstat(handle.fd).st_size < end or location.size == 0:
            # Shorter than its index says (damaged): a read past the end of a mapping would
            # kill the process, so read what is there and let the digest check fail.
            return memoryview(pread_all(handle.fd, location.size, location.offset))
        start = location.offset - location.offset % mmap.ALLOCATIONGRANULARITY
        region = mmap.mmap(handle.fd, end - start, access=mmap.ACCESS_READ, offset=start)
        return memoryview(region)[location.offset - start :]

    def close(self) -> None:
        """Let go of the descriptor (reads in flight finish first); a later read reopens."""
        with self._lock:
            self._handle = None


class PackIndex:
    """Every published pack's blobs, loaded lazily and refreshed when the packs folder changes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._packs: dict[str, Pack] = {}
        self._where: dict[str, Location] = {}
        self._open: OrderedDict[str, Pack] = OrderedDict()
        self._seen: tuple[int, int] | None = None  # (folder mtime_ns, when it was listed)
        self._lock = threading.Lock()

    def lookup(self, digest: str, *, refresh: bool = True, careful: bool = True) -> Location | None:
        """Where `digest` is packed; on a miss, rescan the folder first if it may have changed."""
        where = self._where.get(digest)
        if where is None and refresh:
            # Look again even if this call found nothing new: another thread may have been
            # loading the packs while this one waited for the lock.
            self.refresh(careful=careful)
            where = self._where.get(digest)
        return where

    def read(self, location: Location) -> bytes:
        """The stored bytes at `location` (unverified); `FileNotFoundError` if the pack is gone."""
        return self._opened(location).read(location)

    def view(self, location: Location) -> memoryview:
        """`read` without a copy (see `Pack.view`)."""
        return self._opened(location).view(location)

    def _opened(self, location: Location) -> Pack:
        with self._lock:
            pack = self._packs.get(location.pack)
            if pack is None:
                raise FileNotFoundError(location.pack)
            self._open[pack.name] = pack
            self._open.move_to_end(pack.name)
            while len(self._open) > OPEN_PACKS:
                self._open.popitem(last=False)[1].close()
        return pack

    def pack(self, name: str) -> Pack | None:
        """The published pack called `name`, if the index knows it."""
        return self._packs.get(name)

    def packs(self) -> list[Pack]:
        """Every pack, after a full rescan."""
        self.refresh(force=True)
        return list(self._packs.values())

    def refresh(self, *, force: bool = False, careful: bool = True) -> bool:
        """Rescan the folder if it changed since the last scan (or `force`); whether it did.

        `careful=False` trusts an unchanged mtime even right after a change (for dedup checks,
        where missing a pack published a moment ago only stores a blob twice).
        """
        with self._lock:
            try:
                mtime = os.stat(self.folder).st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            if not force and self._seen is not None and self._seen[0] == mtime:
                # A change in the same clock tick as the last one keeps the mtime: trust an
                # unchanged mtime only once it is older than the listing by a safe margin.
                if not careful or self._seen[1] - mtime > 2_000_000_000:
                    return False
            listed = time.time_ns()
            names = {name for name in _listdir(self.folder) if name.endswith(".pack")}
            self._seen = (mtime, listed)
            gone = self._packs.keys() - names
            for name in gone:
                self._packs.pop(name).close()
                self._open.pop(name, None)
            if gone:
                self._reindex()
            for name in names - self._packs.keys():
                self._index(load_pack(self.folder / name))
            return True

    def add(self, pack: Pack) -> None:
        """Make a pack this process has just published visible at once."""
        with self._lock:
            self._index(pack)

    def _index(self, pack: Pack) -> None:
        self._packs[pack.name] = pack
        for digest, location in pack.entries.items():
            self._where.setdefault(digest, location)

    def forget(self, names: Iterable[str]) -> None:
        """Drop packs this process has just deleted."""
        with self._lock:
            for name in names:
                if (pack := self._packs.pop(name, None)) is not None:
                    pack.close()
                self._open.pop(name, None)
            self._reindex()

    def _reindex(self) -> None:
        # Built aside and swapped in whole: lookups on other threads read it without the lock.
        where: dict[str, Location] = {}
        for pack in self._packs.values():
            for digest, location in pack.entries.items():
                where.setdefault(digest, location)
        self._where = where


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def load_pack(path: Path) -> Pack:
    """Read a pack's index; rebuild it from the records if the checksum shows it torn."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        entries = _read_index(handle.fileno(), size, path.name)
        if entries is None:
            entries = _scan_records(handle.fileno(), size, path.name)
    return Pack(path, entries)


def _read_index(fd: int, size: int, name: str) -> dict[str, Location] | None:
    if size < len(MAGIC) + TRAILER.size:
        return None
    trailer = pread_all(fd, TRAILER.size, size - TRAILER.size)
    start, count, checksum, magic = TRAILER.unpack(trailer)
    if magic != TRAILER_MAGIC or start + count * ENTRY.size != size - TRAILER.size:
        return None
    raw = pread_all(fd, count * ENTRY.size, start)
    if hashlib.sha256(raw).digest() != checksum:
        return None
    entries: dict[str, Location] = {}
    for digest, offset, length in ENTRY.iter_unpack(raw):
        if offset + length > start:
            return None
        entries[PREFIX + digest.hex()] = Location(name, offset, length)
    return entries


def _scan_records(fd: int, size: int, name: str) -> dict[str, Location]:
    entries: dict[str, Location] = {}
    offset = len(MAGIC)
    while offset + RECORD.size <= size:
        digest, length = RECORD.unpack(pread_all(fd, RECORD.size, offset))
        start = offset + RECORD.size
        if start + length > size:
            break
        if hashlib.sha256(pread_all(fd, length, start)).digest() != digest:
            break
        entries[PREFIX + digest.hex()] = Location(name, start, length)
        offset = start + length
    return entries


def unmap(view: memoryview) -> None:
    """Let go of a `view`, unmapping its pages if no other view holds them."""
    region = view.obj
    view.release()
    if isinstance(region, mmap.mmap):
        with suppress(BufferError):  # a slice still alive: unmapped with the last one
            region.close()


def pread_all(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        piece = os.pread(fd, size - got, offset + got)
        if not piece:
            break  # the file is shorter than its index says: the digest check will fail
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
