"""Paths a version's settings name (`file`, `program`, `weights`, `code`, artifacts): each must
stay inside the version's folder, because the settings come from whoever registered it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from modelyard.errors import UnsupportedModel


def inside(folder: Path, relative: Any, *, setting: str = "file") -> Path:
    """`folder / relative`, refused unless it is a relative path without `..` that, with every
    symlink followed, still lands inside `folder`.

    >>> inside(Path("v3"), "model.skops")
    PosixPath('v3/model.skops')
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise UnsupportedModel(f"{folder}: the {setting!r} setting must be a relative path")
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise UnsupportedModel(
            f"{folder}: the {setting!r} setting {relative!r} is an absolute path; a version may "
            "only name files inside its own folder"
        )
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsupportedModel(
            f"{folder}: the {setting!r} setting {relative!r} climbs out of the model folder "
            "with '..'"
        )
    path = folder / relative
    root = folder.resolve()
    if not path.resolve().is_relative_to(root):
        raise UnsupportedModel(
            f"{folder}: the {setting!r} setting {relative!r} is a link to somewhere outside "
            "the model folder"
        )
    return path
