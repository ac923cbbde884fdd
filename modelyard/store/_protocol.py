"""The one interface every blob store implements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

BlobSource = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]
"""What `put` accepts: bytes in memory, a binary file open for reading, or an iterable of pieces."""

READ_SIZE = 1 << 20
"""How many bytes stores read or yield at a time; keeps memory flat whatever the blob's size."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One stored blob, as listed by `BlobStore.blobs`."""

    digest: str
    size: int
    modified: datetime


class BlobStore(Protocol):
    """Immutable bytes addressed by `sha256:<hex>`, each stored once.

    Implementations make every `put` atomic (a crash leaves no partial blob visible under its
    digest) and every `get` verified (bytes that no longer match raise `IntegrityError`).
    """

    def put(self, data: BlobSource, *, digest: str | None = None) -> str:
        """Store `data` and return its digest.

        Pass `digest` when it is already known, to skip work for a blob the store already has;
        the caller vouches for it, and reads still verify it.
        """
        ...

    def get(self, digest: str) -> Iterator[bytes]:
        """Yield the blob's bytes in pieces; raise `BlobNotFound` or `IntegrityError`."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        ...

    def delete(self, digest: str) -> bool:
        """Remove the blob; return whether it was there."""
        ...

    def blobs(self) -> Iterator[BlobInfo]:
        """List every stored blob, in no particular order."""
        ...


def read_bytes(store: BlobStore, digest: str) -> bytes:
    """The whole blob in memory; for small blobs such as manifests."""
    return b"".join(store.get(digest))


def iter_source(data: BlobSource) -> Iterator[bytes]:
    """The pieces of any `BlobSource`, at most `READ_SIZE` bytes each for files."""
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
    elif hasattr(data, "read"):
        while piece := data.read(READ_SIZE):
            yield piece
    else:
        yield from data
