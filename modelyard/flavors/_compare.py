"""What `diff` adds for models: which tensors changed and by how much, and structure changes
(trees, depth, hyper-parameters) from each version's `modelyard.json`."""

from __future__ import annotations

import json
from typing import Any

from modelyard.flavors._models import MODEL_FILE
from modelyard.flavors._trees import summary_changes
from modelyard.registry import Change, Registry, TensorChange, VersionDiff
from modelyard.store import BlobStore, Entry, Manifest, load_manifest, read_bytes


def version_diff(registry: Registry, store: BlobStore, a: str, b: str) -> VersionDiff:
    """The registry's diff of two versions, with tensor and model-structure changes filled in."""
    diff = registry.diff(a, b, manifests=lambda digest: load_manifest(store, digest))
    digest_a = registry.get_version(a).manifest_digest
    digest_b = registry.get_version(b).manifest_digest
    if digest_a is None or digest_b is None:
        return diff
    manifest_a, manifest_b = load_manifest(store, digest_a), load_manifest(store, digest_b)
    return diff.model_copy(
        update={
            "tensors": _tensors(store, manifest_a, manifest_b),
            "model": _structure(store, manifest_a, manifest_b),
        }
    )


def _tensors(store: BlobStore, a: Manifest, b: Manifest) -> list[TensorChange]:
    from modelyard.flavors._tensors import tensor_changes  # NumPy maths, only when needed

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
