"""An in-memory blob store: the fake other packages' tests use."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

from modelyard.errors import BlobNotFound
from modelyard.store._digests import PREFIX, check_digest, verified
from modelyard.store._protocol import BlobInfo, BlobSource, iter_source


class MemoryStore:
    """Blobs in a dict; same contract as `LocalStore`, nothing touches disk.

    >>> store = MemoryStore()
    >>> digest = store.put(b"weights")
    >>> b"".join(store.get(digest))
    b'weights'
    """

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, datetime]] = {}

    def put(self, data: BlobSource, *, digest: str | None = None) -> str:
        if digest is not None and check_digest(digest) in self._blobs:
            return digest
        content = b"".join(iter_source(data))
        digest = PREFIX + hashlib.sha256(content).hexdigest() if digest is None else digest
        self._blobs.setdefault(digest, (content, datetime.now(UTC)))
        return digest

    def get(self, digest: str) -> Iterator[bytes]:
        entry = self._blobs.get(check_digest(digest))
        if entry is None:
            raise BlobNotFound(digest)
        return verified(digest, [entry[0]])

    def exists(self, digest: str) -> bool:
        return check_digest(digest) in self._blobs

    def delete(self, digest: str) -> bool:
        return self._blobs.pop(check_digest(digest), None) is not None

    def blobs(self) -> Iterator[BlobInfo]:
        for digest, (content, modified) in list(self._blobs.items()):
            yield BlobInfo(digest=digest, size=len(content), modified=modified)

    def corrupt(self, digest: str, content: bytes) -> None:
        """Replace a blob's bytes behind the store's back, to test that reads catch it."""
        self._blobs[digest] = (content, self._blobs[digest][1])
