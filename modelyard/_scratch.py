"""Scratch space under the home (`<home>/tmp/`), and the cleaning of what crashed processes left.

A process killed in the middle of `log_model` cannot remove its scratch folder. Keeping those
folders under the home (not in the system's temporary directory, shared with everything else)
means they are found again: each folder's name says which host and process made it, and the
next `Yard` to open, or `modelyard store gc`, removes those whose process is gone.

A load killed the same way leaves a half-restored folder in the cache (`<home>/cache/`):
`restore_directory` stages into `.<name>.partial-<id>`, the cache restores into `.<digest>.<id>`
before renaming it into place and sets a changed folder aside as `.<digest>.discarded-<id>`.
Those names carry no process, so they go once nothing in them has changed for
`LEFTOVER_SECONDS`: a load in flight in another process writes into its folder all along.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCRATCH = "tmp"
"""The scratch folder's name under the home."""

STALE_SECONDS = 3600.0
"""A scratch folder made on another host (whose processes cannot be checked from here) is
removed once nothing in it has changed for this long."""

CACHE = "cache"
"""The folder cache's name under the home (`Yard` keeps versions' folders there)."""

LEFTOVER_SECONDS = 900.0
"""A staging or discarded folder in the cache is removed once nothing in it has changed for
this long: far longer than a load in flight goes without writing (stores time out sooner)."""

# `.<name>.partial-<8 hex>` (restore_directory), `.<digest>.<32 hex>` (the cache's restore),
# `.<digest>.discarded-<32 hex>` (a changed folder set aside); nothing else there is touched.
_LEFTOVER = re.compile(r"\..+\.(partial-[0-9a-f]{8}|discarded-[0-9a-f]{32}|[0-9a-f]{32})")


def scratch_root(home: Path) -> Path:
    """`<home>/tmp/`: where scratch folders go."""
    return home / SCRATCH


@contextmanager
def scratch_folder(home: Path, *, prefix: str = "modelyard") -> Iterator[Path]:
    """A new private folder (mode 0700) under `<home>/tmp/`, removed with its contents on exit.

    >>> with scratch_folder(settings.home) as scratch:
    ...     (scratch / "model").mkdir()
    """
    root = scratch_root(home)
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{_owner()}-{prefix}-", dir=root))
    try:
        yield folder
    finally:
        _remove(folder)


@dataclass(frozen=True, slots=True)
class ScratchCleaned:
    """What `clean_scratch` removed: how many folders (or files), holding how many bytes."""

    removed: int
    bytes: int


def clean_scratch(
    home: Path, *, stale_seconds: float = STALE_SECONDS, leftover_seconds: float = LEFTOVER_SECONDS
) -> ScratchCleaned:
    """Remove what killed processes left under the home. Scratch entries under `<home>/tmp/`
    go when no running process owns them: made on this host by a process that is gone, or,
    made elsewhere or not named by us, unchanged for `stale_seconds`; entries of live
    processes here are kept however old (a long `log_model`). Staging and discarded folders
    in `<home>/cache/` go once unchanged for `leftover_seconds`; the cache's own folders stay.
    Never raises for an entry it cannot remove; another cleaner may be removing it too.

    >>> clean_scratch(settings.home)
    ScratchCleaned(removed=2, bytes=81920)
    """
    now = time.time()
    scratch = [
        e for e in _entries(scratch_root(home)) if _stale(e, now=now, stale_seconds=stale_seconds)
    ]
    cutoff = now - leftover_seconds
    leftovers = [
        e for e in _entries(home / CACHE) if _LEFTOVER.fullmatch(e.name) and _newest(e) < cutoff
    ]
    removed = size = 0
    for entry in [*scratch, *leftovers]:
        counted = _size(entry)
        if _remove(entry):
            removed += 1
            size += counted
    return ScratchCleaned(removed=removed, bytes=size)


def _entries(root: Path) -> list[Path]:
    try:
        return list(root.iterdir())
    except OSError:  # nothing there yet
        return []


def _owner() -> str:
    # Dashes separate the parts, so the host name keeps none of its own.
    host = socket.gethostname().replace("-", "_") or "localhost"
    return f"{host}-{os.getpid()}"


def _stale(entry: Path, *, now: float, stale_seconds: float) -> bool:
    host, _, rest = entry.name.partition("-")  # `<host>-<pid>-<prefix>-<random>`
    pid = rest.partition("-")[0]
    if host == _owner().partition("-")[0] and pid.isdigit():
        return not _alive(int(pid))
    try:
        return now - entry.lstat().st_mtime > stale_seconds
    except OSError:
        return False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _size(entry: Path) -> int:
    if not entry.is_dir() or entry.is_symlink():
        try:
            return entry.lstat().st_size
        except OSError:
            return 0
    total = 0
    for folder, _dirs, files in os.walk(entry):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _newest(entry: Path) -> float:
    """The latest mtime in `entry`'s tree: a folder's own mtime does not move while a file
    deep in it is being written."""
    try:
        newest = entry.lstat().st_mtime
    except OSError:
        return time.time()  # going or gone: leave it to whoever is removing it
    if entry.is_dir() and not entry.is_symlink():
        for folder, dirs, files in os.walk(entry):
            for name in [*dirs, *files]:
                try:
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
                except OSError:
                    pass
    return newest


def _remove(entry: Path) -> bool:
    try:
        if entry.is_dir() and not entry.is_symlink():
            _remove_tree(entry)
        else:
            entry.unlink()
    except OSError:  # gone already (another cleaner), or not ours to remove
        return False
    return True


def _remove_tree(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except PermissionError:  # a restored folder keeps its manifest's modes (0555, say)
        for directory, _, _ in os.walk(folder):
            os.chmod(directory, 0o700)
        shutil.rmtree(folder)
