"""Version folders restored once into a local cache, and checked again each time they are opened.

A cached folder is only as good as the disk it sits on: anyone who can write there could change
a model's files, and a warm cache used to be trusted as it was. Now `FolderCache.open` checks it:

- The first time a process opens a folder, every file is read and hashed against the blobs of
  the version's manifest (fetched from the store by its digest, so it cannot be forged), and
  the folder must hold exactly the manifest's paths, types, modes and symlink targets. This
  costs about one read of the files, which loading them costs anyway.
- Later opens in the same process compare each entry's `lstat` (size, mode, inode, mtime_ns and
  ctime_ns) with what was recorded, in memory, at that verification, and re-hash only the files
  whose stat changed. An edit that keeps the size and even puts the mtime back with
  `os.utime` still moves the ctime (the kernel sets it on every write, chmod or utime and no
  system call sets it back), so it is caught; a replaced file has a new inode and ctime. What a
  stat cannot catch (a write to the raw block device, or a clock set back around the edit) is
  caught at the next process's first open. The recorded stats live in this process's memory,
  so a writer of the cache folder cannot forge them.

A folder that fails either check is never served: it is moved aside and restored from the store
again (the store verifies every blob it reads). The check runs when a folder is opened, so a
change made after that, while a model is loaded, is seen at the next open.

>>> cache = FolderCache(Path("~/.modelyard/cache").expanduser())
>>> folder = cache.open(store, version.manifest_digest)
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelyard.errors import IntegrityError
from modelyard.store._digests import PREFIX
from modelyard.store._folders import restore_directory
from modelyard.store._manifests import Entry, Manifest, load_manifest
from modelyard.store._protocol import READ_SIZE, BlobStore

log = logging.getLogger("modelyard.store")


@dataclass(frozen=True, slots=True)
class _Stat:
    mode: int
    size: int
    inode: int
    mtime_ns: int
    ctime_ns: int


Stats = dict[str, _Stat]
"""Every path under a folder (relative, POSIX) and its `lstat`."""


class FolderCache:
    """Folders of versions under `root`, one per manifest digest, verified when opened."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._verified: dict[Path, Stats] = {}  # stats when this process last verified a folder
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def open(self, store: BlobStore, digest: str) -> Path:
        """The folder of the manifest `digest`: restored from `store` when absent, checked (and
        restored again when it was changed) when present."""
        folder = self.root / digest.replace(":", "-")
        with self._lock(folder):
            if folder.is_dir():
                known = self._verified.get(folder)
                current = _stats(folder)
                if known is not None and current == known:
                    return folder
                manifest = load_manifest(store, digest)
                problem = _problem(folder, manifest, current, known or {})
                if problem is None:
                    self._verified[folder] = current
                    return folder
                log.warning("cached folder %s: %s; restoring it from the store", folder, problem)
                _discard(folder)
            self._verified[folder] = self._restore(store, digest, folder)
        return folder

    def _lock(self, folder: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(folder, threading.Lock())

    def _restore(self, store: BlobStore, digest: str, folder: Path) -> Stats:
        # Restored under a name of its own, then renamed into place: loads of the same version
        # in other processes never see a half-written folder.
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
        manifest = restore_directory(store, digest, scratch)
        try:
            scratch.rename(folder)
        except OSError:  # another process finished first: check its copy like any other
            shutil.rmtree(scratch, ignore_errors=True)
            current = _stats(folder)
            problem = _problem(folder, manifest, current, {})
            if problem is not None:
                raise IntegrityError(digest, actual=f"a cached folder that {problem}") from None
            return current
        return _stats(folder)


def _stats(folder: Path) -> Stats:
    found: Stats = {}
    for directory, dirnames, filenames in os.walk(folder):
        base = Path(directory)
        for name in dirnames + filenames:
            path = base / name
            info = path.lstat()
            found[path.relative_to(folder).as_posix()] = _Stat(
                info.st_mode, info.st_size, info.st_ino, info.st_mtime_ns, info.st_ctime_ns
            )
    return found


def _problem(folder: Path, manifest: Manifest, current: Stats, known: Stats) -> str | None:
    """What differs between `folder` and `manifest` (None when nothing does); files whose stat
    equals their `known` one are not read again."""
    expected = {entry.path for entry in manifest.entries}
    extra = sorted(set(current) - expected)
    if extra:
        return f"holds {extra[0]!r}, which the version does not"
    for entry in manifest.entries:
        info = current.get(entry.path)
        if info is None:
            return f"lacks {entry.path!r}"
        problem = _entry_problem(folder, entry, info, unchanged=known.get(entry.path) == info)
        if problem is not None:
            return problem
    return None


def _entry_problem(folder: Path, entry: Entry, info: _Stat, *, unchanged: bool) -> str | None:
    kinds = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK}
    if not kinds[entry.type](info.mode):
        return f"has {entry.path!r} as something other than a {entry.type}"
    if entry.type == "symlink":
        target = os.readlink(folder / entry.path)
        return None if target == entry.target else f"has {entry.path!r} pointing elsewhere"
    if stat.S_IMODE(info.mode) != entry.mode:
        return f"has {entry.path!r} with mode {stat.S_IMODE(info.mode):o}, not {entry.mode:o}"
    if entry.type == "dir" or unchanged:
        return None
    if info.size != entry.size:
        return f"has {entry.path!r} of {info.size} bytes, not {entry.size}"
    return _content_problem(folder / entry.path, entry)


def _content_problem(path: Path, entry: Entry) -> str | None:
    with path.open("rb") as handle:
        for index, chunk in enumerate(entry.chunks):
            hasher = hashlib.sha256()
            for piece in _read(handle, chunk.size):
                hasher.update(piece)
            if PREFIX + hasher.hexdigest() != chunk.digest:
                return f"has {entry.path!r} changed (chunk {index} does not hash to {chunk.digest})"
        if handle.read(1):
            return f"has {entry.path!r} longer than the version's"
    return None


def _read(handle: BinaryIO, size: int) -> Iterator[bytes]:
    while size > 0:
        piece = handle.read(min(size, READ_SIZE))
        if not piece:
            return
        size -= len(piece)
        yield piece


def _discard(folder: Path) -> None:
    aside = folder.parent / f".{folder.name}.discarded-{uuid.uuid4().hex}"
    try:
        folder.rename(aside)
    except FileNotFoundError:  # another process discarded it first
        return
    for directory, _, _ in os.walk(aside):  # folders restored read-only must become writable
        os.chmod(directory, 0o700)
    shutil.rmtree(aside, ignore_errors=True)
