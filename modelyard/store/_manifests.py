"""A manifest is the content of a folder: every path, its mode, and the blobs that rebuild it.

Its canonical JSON (sorted keys and paths, no spaces) is stored as a blob too, so the manifest's
digest names the whole folder, and equal folders get equal digests.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from functools import cached_property
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelyard.errors import InvalidManifest, InvalidReference
from modelyard.store._digests import check_digest, digest_bytes
from modelyard.store._protocol import BlobStore, read_bytes

FORMAT: Final = "modelyard.manifest/1"


def _digest_field(value: str) -> str:
    try:
        return check_digest(value)
    except InvalidReference as error:
        raise ValueError(error.message) from None


Digest = Annotated[str, AfterValidator(_digest_field)]


def check_path(path: str) -> str:
    """A manifest path: relative, POSIX, with no `.`/`..`/empty parts, so it stays in its folder."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        raise ValueError(f"path {path!r} must be relative, with '/' separators")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"path {path!r} must not contain '.', '..' or empty parts")
    return path


class Chunk(BaseModel):
    """One blob of a file, in order; `name` is the tensor it holds, for safetensors files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest: Digest
    size: int = Field(ge=0)
    name: str | None = None


class Entry(BaseModel):
    """A file, folder or symlink in a manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Annotated[str, AfterValidator(check_path)]
    type: Literal["file", "dir", "symlink"] = "file"
    mode: int = Field(default=0o644, ge=0, le=0o777)
    size: int = Field(default=0, ge=0)
    chunks: tuple[Chunk, ...] = ()
    target: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Entry:
        if self.type == "file" and sum(chunk.size for chunk in self.chunks) != self.size:
            raise ValueError(f"{self.path}: chunk sizes do not add up to {self.size}")
        if self.type != "file" and (self.chunks or self.size):
            raise ValueError(f"{self.path}: only files have chunks")
        if (self.type == "symlink") != (self.target is not None):
            raise ValueError(f"{self.path}: a symlink, and only a symlink, has a target")
        if self.target is not None:
            check_link(self.path, self.target)
        return self


def check_link(path: str, target: str) -> None:
    """Refuse a symlink whose target is absolute or climbs out of the folder."""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise ValueError(f"symlink {path} -> {target} points outside the folder")


class Manifest(BaseModel):
    """The content of a folder; `digest` is the address of its canonical JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["modelyard.manifest/1"] = FORMAT
    entries: tuple[Entry, ...] = ()

    @model_validator(mode="after")
    def _sorted_and_sound(self) -> Manifest:
        paths = [entry.path for entry in self.entries]
        if paths != sorted(set(paths)):
            raise ValueError("entries must be sorted by path, each path once")
        links = {entry.path for entry in self.entries if entry.type == "symlink"}
        for path in paths:
            parent = posixpath.dirname(path)
            while parent:
                if parent in links:
                    raise ValueError(f"{path} lies under the symlink {parent}")
                parent = posixpath.dirname(parent)
        return self

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Read a manifest from JSON, raising `InvalidManifest` with what is wrong."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidManifest(f"invalid manifest: {where}: {first['msg']}") from None

    def canonical(self) -> bytes:
        """The canonical JSON form: what is stored and hashed."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["format"] = FORMAT
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @cached_property
    def digest(self) -> str:
        """The manifest's address in the store."""
        return digest_bytes(self.canonical())

    @property
    def size(self) -> int:
        """Total bytes of the files, as a plain copy would take."""
        return sum(entry.size for entry in self.entries)

    def blob_digests(self) -> Iterator[str]:
        """Every blob the manifest needs (with repeats), itself excluded."""
        for entry in self.entries:
            for chunk in entry.chunks:
                yield chunk.digest


def load_manifest(store: BlobStore, digest: str) -> Manifest:
    """Read and check the manifest stored under `digest`."""
    return Manifest.parse(read_bytes(store, digest))


def save_manifest(store: BlobStore, manifest: Manifest) -> str:
    """Store the manifest's canonical JSON; return its digest."""
    return store.put(manifest.canonical(), digest=manifest.digest)
