"""A container build context for one version: Containerfile, pinned requirements, the model.

Everything that comes from the model's own files (`modelyard.json`'s recorded environment) is
untrusted: only `name==version` pairs matching a strict grammar reach `requirements.txt`, and
nothing from the model is ever written into the Containerfile except through the same checks.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.deploy._containerfile import render_containerfile
from modelyard.deploy._k8s_names import check_image
from modelyard.errors import ConfigurationError, InvalidRequirement
from modelyard.registry import ModelVersion

MAX_INFO_BYTES = 1 << 20  # modelyard.json is small; a huge one is an attack, not a model
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
# PEP 440 public versions (plus a local label such as +cpu), nothing else: no spaces,
# operators, markers, URLs or options can pass.
_VERSION = re.compile(
    r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,5}(?:(?:a|b|rc)[0-9]{1,9})?(?:\.post[0-9]{1,9})?"
    r"(?:\.dev[0-9]{1,9})?(?:\+[a-z0-9]{1,16}(?:\.[a-z0-9]{1,16}){0,3})?"
)
_PYTHON = re.compile(r"([0-9]{1,2})\.([0-9]{1,3})(?:\.[0-9]{1,4})?")
# An image reference as the operator types it (registry/repo:tag@digest); no spaces or quotes.


@dataclass(frozen=True)
class BuildContext:
    """A written build context: its folder and what went into it."""

    path: Path
    base: str
    requirements: list[str]
    wheels: bool


def default_base(environment: Mapping[str, Any]) -> str:
    """`python:X.Y-slim-bookworm` for the Python the version was saved with (3.11 if unknown)."""
    python = environment.get("python")
    match = _PYTHON.fullmatch(python) if isinstance(python, str) else None
    minor = f"{match[1]}.{match[2]}" if match else "3.11"
    return f"docker.io/library/python:{minor}-slim-bookworm"


def pinned_requirements(environment: Mapping[str, Any], *, modelyard_version: str) -> list[str]:
    """`name==version` lines from a recorded environment, plus modelyard itself; refuses
    (`InvalidRequirement`) any name or version outside a strict grammar.

    >>> pinned_requirements({"packages": {"numpy": "2.1.0"}}, modelyard_version="0.1.0")
    ['modelyard==0.1.0', 'numpy==2.1.0']
    """
    packages = environment.get("packages", {})
    if not isinstance(packages, Mapping):
        raise InvalidRequirement(repr(packages)[:80], reason="packages must be a JSON object")
    pins = {"modelyard": modelyard_version}
    for name, version in packages.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidRequirement(repr(name)[:80], reason="not a plain package name")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise InvalidRequirement(f"{name}=={version!r}"[:120], reason="not a plain version")
        if _canonical(name) != "modelyard":  # the image runs this modelyard, not the recorded
            pins[_canonical(name)] = version
    return sorted(f"{name}=={version}" for name, version in pins.items())


def write_context(
    directory: Path,
    *,
    version: ModelVersion,
    restore: Callable[[Path], object],
    modelyard_version: str,
    base: str | None = None,
    wheels: Path | None = None,
) -> BuildContext:
    """Write a build context for `version` into `directory` (absent or empty).

    `restore(folder)` writes the version's files into `folder` (verified by the caller's
    store); `wheels` is a folder of wheels the image installs from with no package index.

    >>> write_context(Path("ctx"), version=v, restore=fetch, modelyard_version="0.1.0")
    """
    name = _checked_name(version.name)
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ConfigurationError(f"build context {directory} is not empty; name a new folder")
    models = directory / "models"
    models.mkdir(parents=True, exist_ok=True)
    restore(models / name)
    environment = _recorded_environment(models / name / "modelyard.json")
    requirements = pinned_requirements(environment, modelyard_version=modelyard_version)
    chosen = check_image(base, what="base image") if base else default_base(environment)
    (models / f"{name}.version.json").write_text(json.dumps(version_record(version), indent=2))
    (directory / "requirements.txt").write_text("\n".join(requirements) + "\n")
    sums = _copy_wheels(wheels, directory / "wheels") if wheels is not None else ""
    (directory / "wheels.sha256").write_text(sums)
    text = render_containerfile(base=chosen, version=version, wheels=wheels is not None)
    (directory / "Containerfile").write_text(text)
    return BuildContext(directory, chosen, requirements, wheels is not None)


def version_record(version: ModelVersion) -> dict[str, Any]:
    """The version's record as `modelyard serve --model-dir` reads it (`<name>.version.json`)."""
    fields = ("name", "number", "params", "metrics", "tags", "description", "flavor",
              "signature", "manifest_digest", "parents", "created_at")  # fmt: skip
    return version.model_dump(mode="json", include=set(fields))


def _recorded_environment(info: Path) -> Mapping[str, Any]:
    if not info.is_file() or info.stat().st_size > MAX_INFO_BYTES:
        raise InvalidRequirement(str(info), reason="modelyard.json is missing or over 1 MiB")
    try:
        saved = json.loads(info.read_bytes())
    except ValueError as error:
        raise InvalidRequirement(str(info), reason=f"not JSON ({error})") from None
    environment = saved.get("environment") if isinstance(saved, dict) else None
    if environment is None:
        return {}
    if not isinstance(environment, dict):
        raise InvalidRequirement(str(info), reason="environment must be a JSON object")
    return environment


def _copy_wheels(source: Path, target: Path) -> str:
    """Copy (hard-link) the wheels; return their `sha256sum` listing. The Containerfile copies
    the listing before installing: the wheels are bind-mounted, which the layer cache does
    not see, so new wheels under an old version number still rebuild the layer."""
    wheels = sorted(Path(source).glob("*.whl"))
    if not wheels:
        raise ConfigurationError(f"--wheels {source} holds no .whl files")
    target.mkdir()
    sums = []
    for wheel in wheels:
        try:  # a hard link is instant and costs no space; a copy where links cannot cross
            (target / wheel.name).hardlink_to(wheel)
        except OSError:
            shutil.copy2(wheel, target / wheel.name)
        with wheel.open("rb") as stream:
            sums.append(f"{hashlib.file_digest(stream, 'sha256').hexdigest()}  {wheel.name}\n")
    return "".join(sums)


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigurationError(f"model name {name!r} cannot name a folder in an image")
    return name


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
