"""Checked reading of what a registry sends: descriptors, bounded bodies, verified streams, safe
paths and safe tar members. Every byte from a registry is untrusted."""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from modelyard.errors import DigestMismatch, InvalidManifest, InvalidReference
from modelyard.store import check_digest

MANIFEST_LIMIT = 4 << 20
"""Largest OCI manifest read (bytes), as the distribution spec suggests registries accept."""


MEMBER_LIMIT = 100_000
"""Most entries a tar layer may hold (each costs memory before any is extracted)."""


def _digest(value: str) -> str:
    try:
        return check_digest(value)
    except InvalidReference as error:
        raise ValueError(error.message) from None


class Descriptor(BaseModel):
    """A layer or config descriptor, as far as modelyard reads it."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    media_type: str = Field(alias="mediaType", max_length=255)
    digest: Annotated[str, AfterValidator(_digest)]
    size: int = Field(ge=0, le=1 << 44)
    annotations: dict[str, str] = Field(default_factory=dict)


class ImageManifest(BaseModel):
    """An OCI (or Docker schema 2) image manifest."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    schema_version: int = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    config: Descriptor
    layers: list[Descriptor] = Field(max_length=200_000)


def parse_image(data: bytes, where: str) -> ImageManifest:
    """Parse a manifest body; `InvalidManifest` naming what is wrong (an index is not a model)."""
    if b"application/vnd.oci.image.index.v1+json" in data or b".manifest.list.v2+json" in data:
        if b'"layers"' not in data:
            raise InvalidManifest(
                f"{where} is an image index (one manifest per platform), not a model artifact; "
                "pull one of its manifests by digest"
            )
    try:
        image = ImageManifest.model_validate_json(data)
    except ValidationError as error:
        first = error.errors()[0]
        at = ".".join(str(part) for part in first["loc"])
        raise InvalidManifest(f"{where}: not an image manifest: {at}: {first['msg']}") from None
    if image.schema_version != 2:
        raise InvalidManifest(f"{where}: schemaVersion {image.schema_version}, expected 2")
    return image


def bounded(pieces: Iterator[bytes], limit: int, what: str) -> bytes:
    """All of `pieces`, refusing more than `limit` bytes before reading further."""
    out = bytearray()
    for piece in pieces:
        out += piece
        if len(out) > limit:
            raise InvalidManifest(f"{what} is over {limit} bytes; refused")
    return bytes(out)


def checked(pieces: Iterator[bytes], layer: Descriptor, where: str) -> Iterator[bytes]:
    """Yield `pieces`, holding the last one back until their size and digest match `layer`: a
    store writing them publishes nothing when they do not."""
    hasher = hashlib.sha256()
    seen = 0
    held: bytes | None = None
    for piece in pieces:
        seen += len(piece)
        if seen > layer.size:
            raise InvalidManifest(f"{where}: layer {layer.digest} is over its {layer.size} bytes")
        hasher.update(piece)
        if held is not None:
            yield held
        held = piece
    actual = "sha256:" + hasher.hexdigest()
    if seen != layer.size:
        raise InvalidManifest(f"{where}: layer {layer.digest} is {seen} bytes, not {layer.size}")
    if actual != layer.digest:
        raise DigestMismatch(layer.digest, actual=actual)
    if held is not None:
        yield held


def safe_path(path: str, where: str) -> str:
    """A file path from a registry: relative, POSIX, no `.`/`..`/empty parts, no NUL."""
    parts = path.split("/")
    bad = (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(part in ("", ".", "..") for part in parts)
        or len(path) > 4096
    )
    if bad:
        raise InvalidManifest(f"{where}: the path {path!r} would escape the folder; refused")
    return path


def unpack_tar(archive: Path, target: Path, *, prefix: str, limit: int, where: str) -> None:
    """Extract a tar(+gzip) layer of the folder `prefix` into `target` (its parent), as ORAS
    packs folders; refuse members outside `prefix`, links out, devices, absolute or climbing
    names, and more than `limit` bytes in all."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = []
            for member in tar:
                members.append(member)
                if len(members) > MEMBER_LIMIT:
                    raise InvalidManifest(f"{where}: the archive has over {MEMBER_LIMIT} members")
            total = 0
            for member in members:
                _check_member(member, prefix, where)
                total += member.size
                if total > limit:
                    raise InvalidManifest(f"{where}: the archive unpacks to over {limit} bytes")
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise InvalidManifest(f"{where}: cannot unpack the archive: {error}") from None


def _inside(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _check_member(member: tarfile.TarInfo, prefix: str, where: str) -> None:
    name = member.name.removeprefix("./").rstrip("/")
    safe_path(name, where)
    if not _inside(name, prefix):
        raise InvalidManifest(f"{where}: {member.name!r} is outside {prefix}/; refused")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise InvalidManifest(f"{where}: {member.name!r} is a device, FIFO or other special file")
    if member.issym() or member.islnk():
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, member.linkname))
        if member.linkname.startswith("/") or not _inside(resolved, prefix):
            raise InvalidManifest(
                f"{where}: the link {member.name!r} -> {member.linkname!r} points outside; refused"
            )


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object from untrusted bytes, or `InvalidManifest`."""
    import json

    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidManifest(f"{what} is not a JSON object")
    return value
