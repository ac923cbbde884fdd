"""The full diff of two versions: what the registry compares (params, metrics, tags, signature,
files through their manifests), plus which tensors changed and by how much, and model-structure
changes (trees, depth, hyper-parameters) from each version's `modelyard.json`.

Nothing is downloaded: equal chunk digests mean equal bytes, so only the blobs of changed
tensors and the two `modelyard.json` files are read.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from modelyard.diff._structure import summary_changes
from modelyard.flavors import MODEL_FILE
from modelyard.registry import Change, ModelVersion, TensorChange, VersionDiff, diff_versions
from modelyard.store import BlobStore, Entry, Manifest, load_manifest, read_bytes


class VersionLookup(Protocol):
    """Resolves references (the embedded registry, its HTTP client and `Yard` all do)."""

    def get_version(self, ref: str) -> ModelVersion:
        """The version `fraud:3` or `fraud@production` names now."""
        ...


def version_diff(registry: VersionLookup, store: BlobStore, a: str, b: str) -> VersionDiff:
    """What differs between versions `a` and `b`, tensors and model structure included.

    >>> version_diff(registry, store, "fraud:3", "fraud:4").tensors[0].l2
    """
    first, second = registry.get_version(a), registry.get_version(b)
    manifest_a = _manifest(store, first)
    manifest_b = _manifest(store, second)
    diff = diff_versions(first, second, manifest_a, manifest_b)
    if manifest_a is None or manifest_b is None:
        return diff
    return diff.model_copy(
        update={
            "tensors": _tensors(store, manifest_a, manifest_b),
            "model": _structure(store, manifest_a, manifest_b),
        }
    )


def _manifest(store: BlobStore, version: ModelVersion) -> Manifest | None:
    if version.manifest_digest is None:
        return None
    return load_manifest(store, version.manifest_digest)


def _tensors(store: BlobStore, a: Manifest, b: Manifest) -> list[TensorChange]:
    from modelyard.diff._tensors import tensor_changes  # NumPy maths, only when needed

    files_a, files_b = _files(a), _files(b)
    changes: list[TensorChange] = []
    for path in sorted(files_a.keys() & files_b.keys()):
        entry_a, entry_b = files_a[path], files_b[path]
        named = any(chunk.name == "__header__" for chunk in entry_a.chunks) and any(
            chunk.name == "__header__" for chunk in entry_b.chunks
        )
        if named and entry_a.chunks != entry_b.chunks:
            changes += tensor_changes(lambda d: read_bytes(store, d), path, entry_a, entry_b)
    return changes


def _structure(store: BlobStore, a: Manifest, b: Manifest) -> list[Change]:
    summary_a, summary_b = _summary(store, a), _summary(store, b)
    if summary_a is None or summary_b is None:
        return []
    return [Change(key=key, a=va, b=vb) for key, va, vb in summary_changes(summary_a, summary_b)]


def _summary(store: BlobStore, manifest: Manifest) -> dict[str, Any] | None:
    entry = _files(manifest).get(MODEL_FILE)
    if entry is None:
        return None
    raw = b"".join(read_bytes(store, chunk.digest) for chunk in entry.chunks)
    summary = json.loads(raw).get("summary")
    return summary if isinstance(summary, dict) else None


def _files(manifest: Manifest) -> dict[str, Entry]:
    return {entry.path: entry for entry in manifest.entries if entry.type == "file"}
