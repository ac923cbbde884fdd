"""DVC and restic as peers of `bench/store.py`: finding or installing them, and storing folders.

Each peer runs as a subprocess, one call per folder, as a user would run it: `dvc add` into the
cache of a `dvc init --no-scm` repository, and `restic backup` into one local repository. DVC
comes from PyPI into its own virtualenv, cached under `~/.cache/modelyard-bench/` (or
`$XDG_CACHE_HOME`); restic comes from Debian (`apt-get install -y restic`) when it is not on
`PATH`. A peer that cannot be had is reported with the reason, never dropped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelyard-bench"
"""Where the DVC virtualenv is kept between runs."""

PEERS = ("DVC", "restic")
"""The peer tools, in the order they run."""

CLI = "modelyard CLI"
"""Ours run the way the peers are: `python -m modelyard store put`, one process per folder."""

PASSWORD = "modelyard-bench"
"""restic's repository password (written to a password file; the repository is throwaway)."""


class PeerUnavailable(Exception):
    """A peer could not be found or installed; the message says why and what was tried."""


@dataclass(slots=True)
class Peer:
    """A peer tool found on this machine: how to call it and what it is."""

    name: str
    executable: str
    version: str
    startup_seconds: float
    """Wall time of a no-op call (`--version`, fastest of three): paid by every call."""

    def describe(self) -> dict[str, object]:
        """The peer as JSON for the report's environment."""
        return {
            "version": self.version,
            "executable": self.executable,
            "startup_seconds": round(self.startup_seconds, 3),
        }


class Repository(Protocol):
    """Somewhere a tool stores folders: ours, a DVC cache, a restic repository."""

    name: str

    def add(self, folder: Path) -> None:
        """Store `folder` (one call per folder, timed by the caller)."""

    def stored_bytes(self) -> int:
        """Bytes on disk of what the tool keeps: the sum of its files' sizes."""


def folder_size(folder: Path) -> int:
    """Total bytes of the files under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run `argv`; return its stdout, or raise `PeerUnavailable` with its last error line."""
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except OSError as error:
        raise PeerUnavailable(f"cannot run {argv[0]}: {error}") from error
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise PeerUnavailable(f"`{' '.join(argv)}` failed ({done.returncode}): {lines[-1]}")
    return done.stdout


def _peer(name: str, executable: str, version_argv: list[str]) -> Peer:
    """The tool's version, and its start time: the fastest of three calls (the first is cold)."""
    times = []
    for _ in range(3):
        began = time.perf_counter()
        version = _run([executable, *version_argv]).strip()
        times.append(time.perf_counter() - began)
    return Peer(name, executable, version, min(times))


def find_dvc(cache: Path = CACHE) -> Peer:
    """DVC from its own virtualenv under `cache`, created with `pip install dvc` if missing."""
    venv = cache / "dvc-venv"
    dvc = venv / "bin" / "dvc"
    try:
        return _peer("DVC", str(dvc), ["--version"])
    except PeerUnavailable:
        pass  # not installed yet, or a broken install: build the virtualenv afresh
    print(f"installing DVC into {venv} (pip install dvc) ...", file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "dvc"])
    except PeerUnavailable as error:
        raise PeerUnavailable(f"cannot install DVC into {venv}: {error}") from error
    return _peer("DVC", str(dvc), ["--version"])


def find_restic() -> Peer:
    """restic from `PATH`, installed from Debian (`apt-get install -y restic`) if missing."""
    path = shutil.which("restic")
    if path is None:
        print("restic not on PATH; trying apt-get install -y restic ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            try:
                _run(["apt-get", "install", "-y", "restic"], env=env)
            except PeerUnavailable:  # a stale package list is the usual cause
                _run(["apt-get", "update"], env=env)
                _run(["apt-get", "install", "-y", "restic"], env=env)
        except PeerUnavailable as error:
            raise PeerUnavailable(f"restic is not installed and {error}") from error
        path = shutil.which("restic")
        if path is None:
            raise PeerUnavailable("apt-get installed restic but it is not on PATH")
    return _peer("restic", path, ["version"])


def find_cli() -> Peer:
    """Our own command line, `python -m modelyard`, under this interpreter."""
    return _peer(CLI, sys.executable, ["-m", "modelyard", "version"])


def find_peers(cache: Path = CACHE) -> dict[str, Peer | str]:
    """Every peer by name, and our command line: the `Peer`, or why it is unavailable."""
    peers: dict[str, Peer | str] = {}
    finders: list[tuple[str, Callable[[], Peer]]] = [
        ("DVC", partial(find_dvc, cache)),
        ("restic", find_restic),
        (CLI, find_cli),
    ]
    for name, find in finders:
        try:
            peers[name] = find()
        except PeerUnavailable as error:
            peers[name] = str(error)
    return peers


class DvcRepository:
    """A `dvc init --no-scm` repository at `root`; folders to add must lie inside it.

    DVC's cache (`.dvc/cache`) is what counts as stored; its site cache (hash and link
    databases) goes to `site`, outside the count, as it would live in `/var/tmp` normally.
    """

    name = "DVC"

    def __init__(self, peer: Peer, root: Path, site: Path) -> None:
        self.peer, self.root = peer, root
        self.env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(site)}

    def open(self) -> None:
        """Create the repository."""
        self.root.mkdir(parents=True, exist_ok=True)
        _run([self.peer.executable, "init", "--no-scm", "--quiet"], cwd=self.root, env=self.env)

    def add(self, folder: Path) -> None:
        """`dvc add` the folder (relative to the repository root)."""
        relative = str(folder.relative_to(self.root))
        _run([self.peer.executable, "add", "--quiet", relative], cwd=self.root, env=self.env)

    def stored_bytes(self) -> int:
        """Bytes of the files in DVC's cache."""
        return folder_size(self.root / ".dvc" / "cache")


class ResticRepository:
    """A local restic repository at `root`, with its password file and local cache beside it."""

    name = "restic"

    def __init__(self, peer: Peer, root: Path) -> None:
        self.peer, self.root = peer, root
        self.password_file = root.with_name(root.name + ".password")
        self.cache_dir = root.with_name(root.name + ".cache")

    def _argv(self, *args: str) -> list[str]:
        return [
            self.peer.executable,
            "--repo",
            str(self.root),
            "--password-file",
            str(self.password_file),
            "--cache-dir",
            str(self.cache_dir),
            "--quiet",
            *args,
        ]

    def open(self) -> None:
        """Write the password file and `restic init` the repository."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(PASSWORD + "\n")
        _run(self._argv("init"))

    def add(self, folder: Path) -> None:
        """`restic backup` the folder as one snapshot."""
        _run(self._argv("backup", str(folder)))

    def stored_bytes(self) -> int:
        """Bytes of the files in the repository (not its local cache)."""
        return folder_size(self.root)


class CliRepository:
    """Ours as the peers run: `python -m modelyard store put FOLDER`, into a store of its own.

    Its home (scratch space) is `home`, so nothing touches the user's `~/.modelyard`.
    """

    name = CLI

    def __init__(self, peer: Peer, root: Path, home: Path) -> None:
        self.peer, self.root = peer, root
        self.env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_STORE_URL": root.as_uri()}

    def open(self) -> None:
        """Create the store's folder."""
        self.root.mkdir(parents=True, exist_ok=True)

    def add(self, folder: Path) -> None:
        """`modelyard store put` the folder."""
        argv = [self.peer.executable, "-m", "modelyard", "store", "put", str(folder), "--json"]
        _run(argv, env=self.env)

    def stored_bytes(self) -> int:
        """Bytes of every file under the store's root."""
        return folder_size(self.root)
