"""Backups of a registry that servers keep using, and restores that never split it.

A backup is a folder: `registry.db`, a consistent copy made with SQLite's online backup API
(one read snapshot: writers go on meanwhile); `blobs/`, a local blob store holding every blob of
the configured store (content-addressed, so a restore puts back only what is missing); and
`backup.json`, what was copied and every manifest the copy references, each checked to be whole
in the backup. PostgreSQL is backed up with `pg_dump` (see `PG_DUMP_GUIDANCE`); its blobs are
copied the same way.

A restore puts the blobs back first, then the database: written beside the target and renamed
over it, so the path never holds half a file. The file it replaces is kept beside it
(`registry.db.before-restore-<time>`, with its `-wal`). A running process notices the new file
(`DatabaseReplaced`) and writes nothing more; restart it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from modelyard.errors import ConfigurationError, DatabaseInUse
from modelyard.registry._database import Database
from modelyard.registry._roots import Root, registry_roots
from modelyard.registry._sqlite_file import validate
from modelyard.store import BlobStore, LocalStore, load_manifest

SMALL_COPY = 1 << 20
"""Blobs up to this size are copied through memory, so a local target can pack them."""

DATABASE = "registry.db"
BLOBS = "blobs"
SUMMARY = "backup.json"
PG_DUMP_GUIDANCE = (
    "PostgreSQL is backed up with its own tools, consistent while servers run:\n"
    "  pg_dump --format=custom --file registry.pgdump 'postgresql://USER@HOST/DB'\n"
    "and restored (servers stopped) with:\n"
    "  pg_restore --clean --if-exists --dbname 'postgresql://USER@HOST/DB' registry.pgdump\n"
    "Then run `modelyard db upgrade` if the dump is older than this modelyard."
)
"""What to run instead of `modelyard backup/restore` for the database on PostgreSQL."""


@dataclass(slots=True)
class Backup:
    """What `back_up` wrote to `path` (or `restore_backup` read from it)."""

    path: Path
    database_bytes: int = 0
    """Bytes of the database copy; 0 on PostgreSQL (use `pg_dump`)."""
    manifests: list[str] = field(default_factory=list)
    """Every manifest the copied registry references."""
    blobs: int = 0
    """Blobs copied (or, for a restore, put back)."""
    blob_bytes: int = 0
    missing: list[str] = field(default_factory=list)
    """Referenced blobs that the backup (or the store, with `blobs=False`) does not hold."""
    replaced: Path | None = None
    """Restore only: where the database it replaced was kept."""


def back_up(database: Database, store: BlobStore, target: Path, *, blobs: bool = True) -> Backup:
    """Copy the registry (SQLite; see `PG_DUMP_GUIDANCE` for PostgreSQL) and, with `blobs`,
    every blob of `store` into the new folder `target`; check every referenced manifest.

    >>> backup = back_up(registry.database, store, Path("/backups/2026-12-02"))
    >>> backup.missing   # [] when every registered version can be restored
    """
    if target.exists() and any(target.iterdir()):
        raise ConfigurationError(f"{target} is not empty; back up into a new folder")
    target.mkdir(parents=True, exist_ok=True)
    result = Backup(path=target)
    if database.dialect == "sqlite":
        copy = target / DATABASE
        result.database_bytes = copy_database(database, copy)
        roots = _roots_of_file(copy)  # what the copy references, not what the live file does
    else:
        roots = list(registry_roots(database))
    result.manifests = sorted({root.digest for root in roots if root.manifest})
    checked: BlobStore = store
    if blobs:
        checked = LocalStore(target / BLOBS)
        result.blobs, result.blob_bytes = copy_blobs(store, checked)
    result.missing = missing_blobs(checked, roots)
    _write_summary(result, dialect=database.dialect, blobs=blobs)
    return result


def copy_database(database: Database, target: Path) -> int:
    """Copy an SQLite registry into `target` with the online backup API (one snapshot, while
    others write); return the bytes written."""
    scratch = target.with_name(f".{target.name}.partial")
    raw = database.engine.raw_connection()
    try:
        destination = sqlite3.connect(scratch)
        try:
            raw.driver_connection.backup(destination)  # type: ignore[union-attr]
            destination.execute("PRAGMA journal_mode=DELETE")
            (verdict,) = destination.execute("PRAGMA quick_check").fetchone()
        finally:
            destination.close()
    finally:
        raw.close()
    if verdict != "ok":
        scratch.unlink()
        raise ConfigurationError(f"the copy of the registry failed its check: {verdict}")
    _fsync(scratch)
    os.replace(scratch, target)
    return target.stat().st_size


def copy_blobs(source: BlobStore, target: BlobStore) -> tuple[int, int]:
    """Put every blob of `source` that `target` lacks into it; return (blobs, bytes) copied.
    Reads are verified, so a damaged blob fails here rather than in a restore."""
    count = size = 0
    # A local target packs the small blobs put in its batch, instead of a file for each one.
    with target.batch() if isinstance(target, LocalStore) else nullcontext():
        for info in source.blobs():
            if target.exists(info.digest):
                continue
            data = source.get(info.digest)
            small = info.size <= SMALL_COPY  # packs take bytes in memory
            target.put(b"".join(data) if small else data, digest=info.digest)
            count, size = count + 1, size + info.size
    return count, size


def missing_blobs(store: BlobStore, roots: list[Root]) -> list[str]:
    """The referenced digests (manifests, and the blobs they list) that `store` lacks."""
    missing: set[str] = set()
    for root in roots:
        if not store.exists(root.digest):
            missing.add(root.digest)
        elif root.manifest:
            manifest = load_manifest(store, root.digest)
            missing.update(d for d in manifest.blob_digests() if not store.exists(d))
    return sorted(missing)


def restore_backup(source: Path, target: Path, store: BlobStore, *, force: bool = False) -> Backup:
    """Put a backup's blobs back into `store`, then its database in place of the SQLite file
    `target`. Refuses (`DatabaseInUse`) while a process has `target` open, unless `force`.
    The backup itself is only read.

    >>> restore_backup(Path("/backups/2026-12-02"), Path("~/.modelyard/registry.db"), store)
    """
    database = source / DATABASE
    if not database.is_file():
        raise ConfigurationError(f"{source} holds no {DATABASE}: not a modelyard backup")
    validate(database)
    if not force and target.exists() and in_use(target):
        raise DatabaseInUse(str(target))
    result = Backup(path=source)
    if (source / BLOBS).is_dir():
        result.blobs, result.blob_bytes = copy_blobs(LocalStore(source / BLOBS), store)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.restoring")
    try:
        _copy_file(database, scratch)
        roots = _roots_of_file(scratch)
        result.manifests = sorted({root.digest for root in roots if root.manifest})
        result.missing = missing_blobs(store, roots)
        result.replaced = replace_database(scratch, target, force=force)
    finally:
        for suffix in ("", "-wal", "-shm"):
            scratch.with_name(scratch.name + suffix).unlink(missing_ok=True)
    result.database_bytes = target.stat().st_size
    return result


def in_use(path: Path) -> bool:
    """Whether another connection (any process) has the SQLite file open: leaving WAL mode
    needs it to be the only one."""
    connection = sqlite3.connect(_uri(path), uri=True, timeout=0, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            return True
        raise
    finally:
        connection.close()
    return False


def replace_database(scratch: Path, target: Path, *, force: bool) -> Path | None:
    """Rename `scratch` (a complete registry file beside `target`) over `target`; keep the file
    it replaces (and its `-wal`) as `<target>.before-restore-<time>`, returned. A process that
    still has the old file open sees `DatabaseReplaced` on its next transaction."""
    _fsync(scratch)
    if not force and target.exists() and in_use(target):
        raise DatabaseInUse(str(target))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    kept = target.with_name(f"{target.name}.before-restore-{stamp}")
    if target.exists():
        try:
            os.link(target, kept)
        except OSError:  # a file system without hard links
            shutil.copy2(target, kept)
    for suffix in ("-wal", "-shm"):  # never leave the old log beside the new file
        log = target.with_name(target.name + suffix)
        if log.exists():
            os.replace(log, kept.with_name(kept.name + suffix))
    os.replace(scratch, target)
    _fsync_folder(target.parent)
    return kept if kept.exists() else None


def _copy_file(source: Path, target: Path) -> None:
    """Copy an SQLite file page by page (a consistent copy, reading it only)."""
    target.unlink(missing_ok=True)
    reader = sqlite3.connect(_uri(source, mode="ro"), uri=True)
    try:
        writer = sqlite3.connect(target)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    finally:
        reader.close()


def _roots_of_file(path: Path) -> list[Root]:
    copy = Database(f"sqlite:///{path}")
    copy.open()
    try:
        return list(registry_roots(copy))
    finally:
        copy.close()


def _write_summary(backup: Backup, *, dialect: str, blobs: bool) -> None:
    summary = {
        **asdict(backup),
        "path": str(backup.path),
        "replaced": None,
        "dialect": dialect,
        "blobs_copied": blobs,
        "created_at": datetime.now(UTC).isoformat(),
    }
    (backup.path / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")


def _uri(path: Path, *, mode: str = "rw") -> str:
    return f"file:{quote(str(path))}?mode={mode}"


def _fsync(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())


def _fsync_folder(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
