"""Diff: what differs between two versions, in one place.

>>> from modelyard.diff import version_diff
>>> diff = version_diff(yard, yard.store, "fraud:3", "fraud:4")   # or `yard.diff(...)`
>>> diff.params, diff.files_changed, [(t.name, t.l2) for t in diff.tensors], diff.model

Params, metrics, tags, signature and files are compared through the versions' records and
manifests (the registry does this part alone: its records `VersionDiff`, `Change`,
`FileChange` and `TensorChange` are what its contract returns); tensors and model structure are
compared here, reading only the blobs that changed. This package sits above `registry` and
`flavors`, which never import it. NumPy is imported only when tensors are compared.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelyard.registry import Change, FileChange, TensorChange, VersionDiff, diff_versions

if TYPE_CHECKING:
    from modelyard.diff._structure import summary_changes
    from modelyard.diff._tensors import tensor_changes
    from modelyard.diff._versions import VersionLookup, version_diff

__all__ = [
    "Change",
    "FileChange",
    "TensorChange",
    "VersionDiff",
    "VersionLookup",
    "diff_versions",
    "summary_changes",
    "tensor_changes",
    "version_diff",
]

_HOMES = {
    "_structure": ("summary_changes",),
    "_tensors": ("tensor_changes",),
    "_versions": ("VersionLookup", "version_diff"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
