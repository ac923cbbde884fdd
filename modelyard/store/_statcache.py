"""Remember how files were cut, so storing an unchanged file again need not read it.

As git's index, DVC's state and restic's parent snapshot do: a file whose path, device, inode,
size, mtime and ctime all equal what was recorded when it was stored is taken to hold the same
bytes, and its recorded chunks are reused (the caller checks each is still in the store). An
edit in place changes the ctime, which `os.utime` cannot set back, so it always misses.

The cache is one SQLite file under the store's root (WAL, so several processes share it). It is
only a hint: a corrupt or unreadable file is removed and rebuilt, and a cache that cannot be
opened at all turns itself off. Nothing is trusted over the store itself.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from modelyard.store._manifests import Chunk

VERSION = 1
"""Bump when the way files are cut changes: entries recorded under another version never match."""

SETTLE_NS = 2_000_000_000
"""A file changed this recently (before it was read) is not recorded. File times advance in
clock ticks, so a write landing in the same tick as the read would keep them; waiting out a
safe margin is git's answer to its "racy" index entries."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    chunks TEXT NOT NULL
)
"""

Key = tuple[int, int, int, int, int]


def stat_key(info: os.stat_result) -> Key:
    """What must be unchanged for a recorded entry to apply."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class StatCache:
    """The recorded chunks of files stored into one store, keyed by absolute path and stat.

    Opens its file on first use; `close` lets it go.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._off = False
        self._rebuilt = False
        self._lock = threading.Lock()

    def lookup(self, path: Path, info: os.stat_result) -> tuple[Chunk, ...] | None:
        """The chunks recorded for `path` if its stat still matches; None otherwise."""
        row = self._run(
            "SELECT chunks FROM files WHERE path = ? AND version = ? AND device = ? AND inode = ?"
            " AND size = ? AND mtime_ns = ? AND ctime_ns = ?",
            (_name(path), VERSION, *stat_key(info)),
        )
        if row is None:
            return None
        try:
            chunks = tuple(Chunk.model_validate(item) for item in json.loads(row[0]))
        except ValueError:  # a damaged entry: a miss, and the next record replaces it
            return None
        return chunks if sum(chunk.size for chunk in chunks) == info.st_size else None

    def record(
        self, path: Path, info: os.stat_result, chunks: tuple[Chunk, ...], *, read_at: int
    ) -> bool:
        """Remember `chunks` for `path`, whose stat before it was read (at `read_at`, ns since
        the epoch) was `info`; skipped, returning False, if the file changed or may still."""
        try:
            now = path.stat()
        except OSError:
            return False
        if stat_key(now) != stat_key(info) or max(info.st_mtime_ns, info.st_ctime_ns) > (
            read_at - SETTLE_NS
        ):
            return False
        data = json.dumps([chunk.model_dump(exclude_none=True) for chunk in chunks])
        self._run(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (_name(path), VERSION, *stat_key(info), data),
            write=True,
        )
        return True

    def prune(self) -> int:
        """Forget the files that are gone or changed since they were recorded (entries that can
        never match again, such as scratch folders' files); return how many. `store gc` runs it,
        so the cache stays as small as the files it describes."""
        with self._lock:
            connection = self._connect()
            if connection is None:
                return 0
            try:
                with connection:
                    rows = connection.execute(
                        "SELECT path, version, device, inode, size, mtime_ns, ctime_ns FROM files"
                    ).fetchall()
                    stale = [(path,) for path, *key in rows if not _current(path, key)]
                    connection.executemany("DELETE FROM files WHERE path = ?", stale)
            except sqlite3.Error:  # busy or damaged: a hint only, pruned next time
                return 0
        return len(stale)

    def close(self) -> None:
        """Close the database (a later call opens it again)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _run(
        self, sql: str, parameters: tuple[object, ...], *, write: bool = False
    ) -> tuple[str] | None:
        with self._lock:
            for attempt in range(2):
                connection = self._connect()
                if connection is None:
                    return None
                try:
                    with connection:
                        row: tuple[str] | None = connection.execute(sql, parameters).fetchone()
                    return row
                except sqlite3.OperationalError as error:
                    if "locked" in str(error) or "busy" in str(error):
                        return None  # another process holds it: skip this hint
                    self._reset(rebuild=attempt == 0)
                except sqlite3.DatabaseError:  # corrupt: start again from an empty cache
                    self._reset(rebuild=attempt == 0)
            return None

    def _connect(self) -> sqlite3.Connection | None:
        if self._off:
            return None
        if self._connection is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(self.path, timeout=1.0, check_same_thread=False)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute(_SCHEMA)
            except (sqlite3.Error, OSError):
                self._reset(rebuild=True)
                if self._off:
                    return None
                return self._connect()
            self._connection = connection
        return self._connection

    def _reset(self, *, rebuild: bool) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        # Rebuilt once per process at most: a file that keeps failing turns the cache off.
        if not rebuild or self._rebuilt:
            self._off = True
            return
        self._rebuilt = True
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
            except OSError:
                self._off = True


def _name(path: Path) -> str:
    # Absolute, so an entry for another folder's file of the same name never applies.
    return os.path.abspath(path)


def _current(path: str, key: list[int]) -> bool:
    version, *stat = key
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return version == VERSION and tuple(stat) == stat_key(info)


def now_ns() -> int:
    """The wall-clock time that `record`'s `read_at` is measured in."""
    return time.time_ns()
