"""The SQLite file under a registry: created atomically, opened only if it is one, watched.

A registry file is created whole or not at all: a new database is made in a temporary file
beside the target and linked into place, and never over a path whose `-wal` is still there (a
database deleted or moved while in use: a new file would adopt its log and wreck it). A file
that exists is opened with `mode=rw`, so a path that vanishes between the check and the open
fails instead of becoming an empty stub that other processes then migrate.

While a process runs, the file's identity (device and inode) is compared with the one recorded
at open before every transaction and again before every write commits: one `os.stat`, about
a microsecond. A file replaced (a restore, a copy) or deleted under the process raises
`DatabaseReplaced` instead of writing into a file that nobody else will ever read.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path
from urllib.parse import quote

from modelyard.errors import DatabaseReplaced, InvalidDatabase

APPLICATION_ID = 0x6D797264
"""`PRAGMA application_id` of a registry file ("myrd"): an empty file made by modelyard."""
_MAGIC = b"SQLite format 3\x00"
_HEADER = 100


class DatabaseFile:
    """The registry file at `path`: `prepare()` creates or checks it, `connect()` opens a
    connection, `check()` raises `DatabaseReplaced` once the path holds another file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None

    def prepare(self) -> None:
        """Create the file if the path is new, else make sure it is a registry; record its
        identity."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self._create()
        validate(self.path)
        stat = self.path.stat()
        self._identity = (stat.st_dev, stat.st_ino)

    def connect(self, *, timeout: float) -> sqlite3.Connection:
        """A connection to the file that was prepared; never creates one."""
        self.check()
        return sqlite3.connect(
            f"file:{quote(str(self.path))}?mode=rw",
            uri=True,
            check_same_thread=False,
            timeout=timeout,
        )

    def check(self) -> None:
        """Raise `DatabaseReplaced` if the path no longer holds the file that was prepared."""
        if self._identity is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise DatabaseReplaced(str(self.path), vanished=True) from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise DatabaseReplaced(str(self.path), vanished=False)

    def _create(self) -> None:
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise InvalidDatabase(
                str(self.path),
                reason=f"the file is missing but its write-ahead log {wal.name} is there: it was "
                "deleted or moved while in use. Put it (or a backup, `modelyard restore`) back; "
                f"to start an empty registry instead, remove {wal.name} and the -shm file",
            )
        scratch = self.path.with_name(f".{self.path.name}.{os.urandom(6).hex()}.creating")
        connection = sqlite3.connect(scratch, isolation_level=None)
        try:
            connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
        try:
            os.link(scratch, self.path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError:  # a file system without hard links: a rename, unless one is there now
            if not self.path.exists():
                os.replace(scratch, self.path)
        finally:
            scratch.unlink(missing_ok=True)


def validate(path: Path) -> None:
    """Raise `InvalidDatabase` unless `path` is an SQLite file that is a registry, or a new
    one modelyard made: not empty, not truncated, not a stub without tables."""
    with path.open("rb") as file:
        header = file.read(_HEADER)
    size = path.stat().st_size
    if not header:
        raise InvalidDatabase(str(path), reason=_stub("the file is empty"))
    if len(header) < _HEADER or not header.startswith(_MAGIC):
        raise InvalidDatabase(str(path), reason="it is not an SQLite database (or is truncated)")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    (pages,) = struct.unpack(">I", header[28:32])
    valid_for, changes = header[92:96], header[24:28]
    wal = path.with_name(path.name + "-wal")
    log_empty = not wal.exists() or wal.stat().st_size == 0
    if size % page_size or (log_empty and valid_for == changes and size < pages * page_size):
        raise InvalidDatabase(
            str(path),
            reason=f"the file is truncated ({size} bytes; its header says "
            f"{pages * page_size}); restore it from a backup (`modelyard restore`)",
        )
    if struct.unpack(">I", header[68:72])[0] == APPLICATION_ID:
        return  # made by modelyard, migrated or about to be
    if _tables(path) == 0:
        raise InvalidDatabase(str(path), reason=_stub("it holds no tables"))


def _tables(path: Path) -> int:
    connection = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=60)
    try:
        row = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as error:
        raise InvalidDatabase(str(path), reason=str(error)) from None
    finally:
        connection.close()
    return int(row[0])


def _stub(what: str) -> str:
    return (
        f"{what}: a stub left by an interrupted copy or create, never a registry. Restore the "
        "registry (`modelyard restore`), or remove the file to start an empty one"
    )
