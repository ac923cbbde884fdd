"""Scratch space under the home (`<home>/tmp/`), and the cleaning of what crashed processes left.

A process killed in the middle of `log_model` cannot remove its scratch folder. Keeping those
folders under the home (not in the system's temporary directory, shared with everything else)
means they are found again: each folder's name says which host and process made it, and the
next `Yard` to open, or `modelyard store gc`, removes those whose process is gone.
"""

from __future__ import annotations

import os
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
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class ScratchCleaned:
    """What `clean_scratch` removed: how many folders (or files), holding how many bytes."""

    removed: int
    bytes: int


def clean_scratch(home: Path, *, stale_seconds: float = STALE_SECONDS) -> ScratchCleaned:
    """Remove the scratch entries under `<home>/tmp/` that no running process owns: made on
    this host by a process that is gone, or, made elsewhere or not named by us, unchanged for
    `stale_seconds`. Entries of live processes here are kept however old (a long `log_model`).
    Never raises for an entry it cannot remove; another cleaner may be removing it too.

    >>> clean_scratch(settings.home)
    ScratchCleaned(removed=2, bytes=81920)
    """
    root = scratch_root(home)
    try:
        entries = list(root.iterdir())
    except OSError:  # no scratch yet
        return ScratchCleaned(removed=0, bytes=0)
    removed = size = 0
    now = time.time()
    for entry in entries:
        if _stale(entry, now=now, stale_seconds=stale_seconds):
            counted = _size(entry)
            if _remove(entry):
                removed += 1
                size += counted
    return ScratchCleaned(removed=removed, bytes=size)


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


def _remove(entry: Path) -> bool:
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except OSError:  # gone already (another cleaner), or not ours to remove
        return False
    return True
