"""The environment a model was saved in (Python and package versions), checked when it loads."""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any


class EnvironmentMismatch(UserWarning):
    """A model is loaded under a different major version of Python or a package than it was saved
    with; it may load wrongly or predict differently."""


def capture_environment(packages: Iterable[str]) -> dict[str, Any]:
    """Python's version and the installed versions of `packages` (and NumPy), for the record."""
    versions = {}
    for package in sorted({"numpy", *packages}):
        version = installed_version(package)
        if version is not None:
            versions[package] = version
    return {"python": platform.python_version(), "packages": versions}


def check_environment(recorded: Mapping[str, Any], *, what: str) -> list[str]:
    """Warn (`EnvironmentMismatch`) for each major-version difference; return the messages."""
    pairs: list[tuple[str, str | None, str | None]] = [
        ("python", recorded.get("python"), platform.python_version())
    ]
    for package, version in sorted(dict(recorded.get("packages", {})).items()):
        pairs.append((package, version, installed_version(package)))
    messages = []
    for package, saved, current in pairs:
        if saved is None:
            continue
        if current is None:
            messages.append(f"{what} was saved with {package} {saved}, which is not installed")
        elif _major(saved) != _major(current):
            messages.append(
                f"{what} was saved with {package} {saved} and is loaded with {package} {current}"
                "; a different major version may load or predict differently"
            )
    for message in messages:
        warnings.warn(message, EnvironmentMismatch, stacklevel=3)
    return messages


def installed_version(package: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _major(version: str) -> str:
    return version.split(".")[0]
