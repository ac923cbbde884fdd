"""The last version that served each followed alias, kept on local disk.

A restart must not depend on the alias's version loading: a corrupt or missing blob, or a
damaged cache, would otherwise leave nothing served. After each successful swap the pool
records the version here (`<home>/serving/last-good.json`, replaced atomically, so a crash or
a second worker writing at the same moment never leaves half a file); at start, when the
alias's version cannot load, the pool serves the one recorded instead and says so loudly.

The file is local state the process wrote itself, but it is read as untrusted all the same:
anything unreadable counts as no record, and a recorded version is used only if the registry
still has it under the same id (another registry with the same home gives no fallback).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from modelyard.registry import ModelVersion

log = logging.getLogger("modelyard.serving")

FILE = Path("serving") / "last-good.json"


class LastGood:
    """Read and record the last good version of each followed alias (`fraud@production`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, alias: str) -> tuple[str, str] | None:
        """The recorded version of `alias` as (`fraud:3`, its id), or None."""
        entry = self._read().get(alias)
        if not isinstance(entry, dict):
            return None
        ref, identity = entry.get("ref"), entry.get("id")
        if not isinstance(ref, str) or not isinstance(identity, str):
            return None
        return ref, identity

    def record(self, alias: str, version: ModelVersion) -> None:
        """Remember `version` as serving `alias`; a failure to write is logged, never raised
        (serving goes on, only the fallback is lost)."""
        entries = self._read()
        current = entries.get(alias)
        if isinstance(current, dict) and current.get("id") == version.id:
            return
        entries[alias] = {"ref": version.ref, "id": version.id}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".last-good-")
            with os.fdopen(handle, "w") as file:
                json.dump(entries, file, indent=2, sort_keys=True)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            log.warning("could not record %s as the last good version of %s: %s", version.ref,
                        alias, error)  # fmt: skip

    def _read(self) -> dict[str, Any]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):  # absent, unreadable or damaged: no record
            return {}
        return entries if isinstance(entries, dict) else {}
