"""Differences between two versions: params, metrics, tags, signature and files.

Files are compared through their manifests, so nothing is downloaded: equal chunk digests mean
equal bytes, and for safetensors files the chunk names tell which tensors changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelyard import _html
from modelyard.registry._records import ModelVersion
from modelyard.store import Entry, Manifest


class Change(BaseModel):
    """One key whose value differs (`None` on a side where the key is absent)."""

    model_config = ConfigDict(frozen=True)

    key: str
    a: Any = None
    b: Any = None


class FileChange(BaseModel):
    """A file present in both versions whose bytes differ; `tensors` names changed tensors."""

    model_config = ConfigDict(frozen=True)

    path: str
    size_a: int
    size_b: int
    changed_bytes: int
    tensors_changed: list[str] = Field(default_factory=list)
    tensors_added: list[str] = Field(default_factory=list)
    tensors_removed: list[str] = Field(default_factory=list)


class TensorChange(BaseModel):
    """How one tensor of a weights file differs between two versions.

    `status` is `changed`, `added`, `removed` or `shape-changed`. For `changed` tensors: `l2` is
    the L2 norm of (b - a), `max_abs` the largest absolute change, `fraction` the share of
    elements that differ.
    """

    model_config = ConfigDict(frozen=True)

    file: str
    name: str
    status: str
    dtype: str = ""
    shape_a: list[int] | None = None
    shape_b: list[int] | None = None
    l2: float | None = None
    max_abs: float | None = None
    fraction: float | None = None


class VersionDiff(BaseModel):
    """What differs between versions `a` and `b`."""

    model_config = ConfigDict(frozen=True)

    a: str
    b: str
    params: list[Change] = Field(default_factory=list)
    metrics: list[Change] = Field(default_factory=list)
    tags: list[Change] = Field(default_factory=list)
    signature_changed: bool = False
    files_added: list[str] = Field(default_factory=list)
    files_removed: list[str] = Field(default_factory=list)
    files_changed: list[FileChange] = Field(default_factory=list)
    tensors: list[TensorChange] = Field(default_factory=list)
    model: list[Change] = Field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Whether nothing at all differs."""
        return not (
            self.params or self.metrics or self.tags or self.signature_changed
            or self.files_added or self.files_removed or self.files_changed
            or self.tensors or self.model
        )  # fmt: skip

    def _repr_html_(self) -> str:
        rows = [
            (f"{kind}.{c.key}", "-" if c.a is None else c.a, "-" if c.b is None else c.b)
            for kind in ("params", "metrics", "tags", "model")
            for c in getattr(self, kind)
        ]
        rows += [("signature", "…", "changed")] if self.signature_changed else []
        rows += [(f"file {path}", "-", "added") for path in self.files_added]
        rows += [(f"file {path}", "removed", "-") for path in self.files_removed]
        rows += [
            (f"file {f.path}", f"{f.size_a} bytes", f"{f.changed_bytes} bytes differ")
            for f in self.files_changed
        ]
        tensors = [
            (
                t.file,
                t.name,
                t.status,
                "-" if t.l2 is None else f"{t.l2:.4g}",
                "-" if t.fraction is None else f"{t.fraction:.1%}",
            )
            for t in self.tensors
        ]
        return _html.card(
            f"{self.a} → {self.b}",
            _html.table(["", self.a, self.b], rows) or _html.escape("identical"),
            _html.section("tensors", _html.table(["file", "tensor", "", "L2", "changed"], tensors)),
            note="diff",
        )


def diff_versions(
    a: ModelVersion, b: ModelVersion, manifest_a: Manifest | None, manifest_b: Manifest | None
) -> VersionDiff:
    """Compare two versions (and their manifests, when they have artifacts)."""
    files = _diff_files(manifest_a or Manifest(), manifest_b or Manifest())
    return VersionDiff(
        a=a.ref,
        b=b.ref,
        params=_diff_maps(a.params, b.params),
        metrics=_diff_maps(a.metrics, b.metrics),
        tags=_diff_maps(a.tags, b.tags),
        signature_changed=a.signature != b.signature,
        **files,
    )


def _diff_maps(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    return [
        Change(key=key, a=a.get(key), b=b.get(key))
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]


def _diff_files(a: Manifest, b: Manifest) -> dict[str, Any]:
    files_a = {entry.path: entry for entry in a.entries if entry.type == "file"}
    files_b = {entry.path: entry for entry in b.entries if entry.type == "file"}
    changed = [
        _diff_file(files_a[path], files_b[path])
        for path in sorted(files_a.keys() & files_b.keys())
        if files_a[path].chunks != files_b[path].chunks
    ]
    return {
        "files_added": sorted(files_b.keys() - files_a.keys()),
        "files_removed": sorted(files_a.keys() - files_b.keys()),
        "files_changed": changed,
    }


def _diff_file(a: Entry, b: Entry) -> FileChange:
    digests_a = {chunk.digest for chunk in a.chunks}
    changed_bytes = sum(chunk.size for chunk in b.chunks if chunk.digest not in digests_a)
    named_a = {chunk.name: chunk.digest for chunk in a.chunks if chunk.name}
    named_b = {chunk.name: chunk.digest for chunk in b.chunks if chunk.name}
    named_a.pop("__header__", None)
    named_b.pop("__header__", None)
    return FileChange(
        path=a.path,
        size_a=a.size,
        size_b=b.size,
        changed_bytes=changed_bytes,
        tensors_changed=sorted(
            k for k in named_a.keys() & named_b.keys() if named_a[k] != named_b[k]
        ),
        tensors_added=sorted(named_b.keys() - named_a.keys()),
        tensors_removed=sorted(named_a.keys() - named_b.keys()),
    )
