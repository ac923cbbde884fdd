"""Version folders restored once into a local cache, and checked again each time they are opened.

A cached folder is only as good as the disk it sits on: anyone who can write there could change
a model's files, and a warm cache used to be trusted as it was. Now `FolderCache.open` checks it:

- The first time a process opens a folder, every file is read and hashed against the blobs of
  the version's manifest (fetched from the store by its digest, so it cannot be forged), and
  the folder must hold exactly the manifest's paths, types, modes and symlink targets. This
  costs about one read of the files: the chunks of a file are read with `pread` into a reused
  buffer per thread and hashed by several threads at once (hashlib releases the GIL), so a
  large model is checked at about the machine's hashing speed times its cores.
- Later opens in the same process compare each entry's `lstat` (size, mode, inode, mtime_ns and
  ctime_ns) with what was recorded, in memory, at that verification, and re-hash only the files
  whose stat changed. An edit that keeps the size and even puts the mtime back with
  `os.utime` still moves the ctime (the kernel sets it on every write, chmod or utime and no
  system call sets it back), so it is caught; a replaced file has a new inode and ctime. What a
  stat cannot catch (a write to the raw block device, or a clock set back around the edit: both
  need root) is caught at the next process's first open that hashes. The recorded stats live in
  this process's memory (or in a mark, below), so a writer of the cache folder cannot forge them.
- Given a `key` (the client passes one derived from the home's secret), a verification is also
  recorded in a mark, `<root>/.marks/<folder>.json`: the folder's digest and stats under an
  HMAC of that key. A later process whose folder's stats equal a mark's (checked as above, with
  the MAC checked first) skips the hashing: a new process then loads a model as fast as a
  plain `safetensors` load. A writer of the cache folder who lacks the secret cannot forge or
  move a mark, and any edit of a file changes its ctime, so its mark no longer applies.

A folder that fails either check is never served: it is moved aside and restored from the store
again (the store verifies every blob it reads). The check runs when a folder is opened, so a
change made after that, while a model is loaded, is seen at the next open; as flavors map large
files (safetensors) rather than copy them, such a change can also reach a model already loaded,
so the cache must stay writable only by the user who loads from it.

>>> cache = FolderCache(Path("~/.modelyard/cache").expanduser(), key=lambda: secret)
>>> folder = cache.open(store, version.manifest_digest)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import IntegrityError
from modelyard.store._digests import PREFIX
from modelyard.store._folders import restore_directory
from modelyard.store._manifests import Entry, Manifest, load_manifest
from modelyard.store._protocol import READ_SIZE, BlobStore

log = logging.getLogger("modelyard.store")

HASH_THREADS = min(8, os.cpu_count() or 1)
"""Threads that hash the chunks of a file at once when a folder is first checked."""


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

    def __init__(self, root: Path, *, key: Callable[[], bytes] | None = None) -> None:
        self.root = root
        self._key = key  # called once, on the first open: constructors do no I/O
        self._mac_key: bytes | None = None
        self._verified: dict[Path, Stats] = {}  # stats when this process last verified a folder
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def open(self, store: BlobStore, digest: str) -> Path:
        """The folder of the manifest `digest`: restored from `store` when absent, checked (and
        restored again when it was changed) when present."""
        folder = self.root / digest.replace(":", "-")
        with self._lock(folder):
            if folder.is_dir():
                known = self._verified.get(folder) or self._marked(folder, digest)
                current = _stats(folder)
                if known is not None and current == known:
                    self._verified[folder] = current
                    return folder
                manifest = load_manifest(store, digest)
                problem = _problem(folder, manifest, current, known or {})
                if problem is None:
                    self._record(folder, digest, current)
                    return folder
                log.warning("cached folder %s: %s; restoring it from the store", folder, problem)
                _discard(folder)
            self._record(folder, digest, self._restore(store, digest, folder))
        return folder

    def _record(self, folder: Path, digest: str, stats: Stats) -> None:
        self._verified[folder] = stats
        key = self._marks_key()
        if key is None:
            return
        marks = self.root / ".marks"
        body = _mark_body(digest, stats)
        text = json.dumps({"body": body, "mac": hmac.new(key, body.encode(), "sha256").hexdigest()})
        scratch = marks / f".{folder.name}.{uuid.uuid4().hex}"
        try:
            marks.mkdir(mode=0o700, exist_ok=True)
            scratch.write_text(text)
            scratch.replace(marks / f"{folder.name}.json")  # atomic: a reader sees old or new
        except OSError as error:  # a read-only cache: the next process hashes again, that is all
            log.debug("cannot mark %s as verified: %s", folder, error)
            scratch.unlink(missing_ok=True)

    def _marked(self, folder: Path, digest: str) -> Stats | None:
        """The stats a genuine mark of `digest` records for `folder`, else None."""
        key = self._marks_key()
        if key is None:
            return None
        try:
            mark = json.loads((self.root / ".marks" / f"{folder.name}.json").read_text())
            body, mac = str(mark["body"]), str(mark["mac"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        expected = hmac.new(key, body.encode(), "sha256").hexdigest()
        if not hmac.compare_digest(mac, expected):
            log.warning("cached folder %s: its mark is not genuine; checking every file", folder)
            return None
        recorded = json.loads(body)
        if recorded["digest"] != digest:  # a genuine mark of another folder, moved here
            return None
        return {path: _Stat(*values) for path, values in recorded["stats"].items()}

    def _marks_key(self) -> bytes | None:
        if self._key is not None and self._mac_key is None:
            # A key of its own: a mark can never pass for anything else the secret signs.
            self._mac_key = hmac.new(self._key(), b"modelyard cache marks", "sha256").digest()
        return self._mac_key

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


def _mark_body(digest: str, stats: Stats) -> str:
    fields = {path: [s.mode, s.size, s.inode, s.mtime_ns, s.ctime_ns] for path, s in stats.items()}
    return json.dumps({"digest": digest, "stats": fields}, sort_keys=True)


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
    starts, offset = [], 0
    for chunk in entry.chunks:
        starts.append(offset)
        offset += chunk.size
    with path.open("rb") as handle:
        descriptor, local = handle.fileno(), threading.local()
        sizes = [chunk.size for chunk in entry.chunks]
        with ThreadPoolExecutor(min(HASH_THREADS, len(sizes) or 1)) as pool:
            digests = list(pool.map(lambda at, size: _digest(descriptor, at, size, local),
                                    starts, sizes))  # fmt: skip
        longer = bool(os.pread(descriptor, 1, offset))
    for index, (chunk, digest) in enumerate(zip(entry.chunks, digests, strict=True)):
        if digest != chunk.digest:
            return f"has {entry.path!r} changed (chunk {index} does not hash to {chunk.digest})"
    return f"has {entry.path!r} longer than the version's" if longer else None


def _digest(descriptor: int, offset: int, size: int, local: threading.local) -> str:
    """The digest of `size` bytes at `offset` (fewer if the file ends first), read into a buffer
    each thread reuses: no new bytes object per piece."""
    buffer = getattr(local, "buffer", None)
    if buffer is None:
        buffer = local.buffer = memoryview(bytearray(READ_SIZE))
    hasher = hashlib.sha256()
    while size > 0:
        got = os.preadv(descriptor, [buffer[: min(size, READ_SIZE)]], offset)
        if not got:
            break
        hasher.update(buffer[:got])
        offset, size = offset + got, size - got
    return PREFIX + hasher.hexdigest()


def _discard(folder: Path) -> None:
    aside = folder.parent / f".{folder.name}.discarded-{uuid.uuid4().hex}"
    try:
        folder.rename(aside)
    except FileNotFoundError:  # another process discarded it first
        return
    for directory, _, _ in os.walk(aside):  # folders restored read-only must become writable
        os.chmod(directory, 0o700)
    shutil.rmtree(aside, ignore_errors=True)
