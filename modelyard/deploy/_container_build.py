"""Build a written context into an image with podman or buildah, whichever is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from modelyard.errors import BuildFailed

Builder = Literal["podman", "buildah"]
BUILDERS: tuple[Builder, ...] = ("podman", "buildah")
# A tag as podman accepts it; never starting with '-', so it cannot read as an option.
_TAG = re.compile(r"[a-z0-9][a-z0-9._/:-]{0,254}", re.IGNORECASE)
_NETWORKS = ("none", "host")


def find_builder(
    wanted: Builder | None = None, *, context: Path | None = None
) -> tuple[Builder, str]:
    """The builder to use and its path: `wanted`, or the first of podman, buildah installed;
    `BuildFailed` (naming `context`, kept) when none is."""
    for name in (wanted,) if wanted else BUILDERS:
        path = shutil.which(name)
        if path is not None:
            return name, path
    names = wanted or " or ".join(BUILDERS)
    raise BuildFailed(f"{names} is not installed", hint="apt-get install podman", context=context)


def build_command(
    context: Path, *, tag: str, builder: Builder, path: str, network: str, iidfile: Path
) -> list[str]:
    """The argv that builds `context` (no shell: nothing in it is interpreted)."""
    if not _TAG.fullmatch(tag):
        raise BuildFailed(f"tag {tag!r} is not an image name", hint="use NAME[:TAG]")
    if network not in _NETWORKS:
        raise BuildFailed(f"network {network!r} is not one of {', '.join(_NETWORKS)}")
    verb = ["build"] if builder == "podman" else ["bud"]
    # The docker image format: the OCI format has no HEALTHCHECK, and podman drops it there.
    return [path, *verb, "--format=docker", f"--network={network}", "--layers",
            "--iidfile", str(iidfile), "-f", str(context / "Containerfile"), "-t", tag,
            str(context)]  # fmt: skip


def build_image(
    context: Path,
    *,
    tag: str,
    builder: Builder | None = None,
    network: str = "none",
    timeout: float = 3600.0,
) -> str:
    """Build `context` as `tag`; return the image id. Raises `BuildFailed` (context kept).

    `network="none"` builds with no network at all (wheels in the context, `--wheels`);
    a context that installs from a package index needs `network="host"`.

    >>> build_image(Path("ctx"), tag="localhost/iris:1")
    'sha256:3b8838a8…'
    """
    name, path = find_builder(builder, context=context)
    with tempfile.TemporaryDirectory() as scratch:
        iidfile = Path(scratch) / "iid"
        command = build_command(
            Path(context), tag=tag, builder=name, path=path, network=network, iidfile=iidfile
        )
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BuildFailed(f"{name} build ran over {timeout:.0f}s", context=context) from None
        if done.returncode != 0 or not iidfile.exists():
            tail = (done.stderr or done.stdout).strip()[-2000:]
            raise BuildFailed(f"{name} build exited {done.returncode}: {tail}", context=context)
        return iidfile.read_text().strip()
