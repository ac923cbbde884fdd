from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelyard.store import BlobStore, LocalStore, MemoryStore


@pytest.fixture(params=["memory", "local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """Each store implementation, run through the same contract tests."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "local":
        yield LocalStore(tmp_path / "blobs")
    else:
        yield request.getfixturevalue("s3_store")


CorruptFn = Callable[[BlobStore, str, bytes], None]


@pytest.fixture
def corrupt() -> CorruptFn:
    """Overwrite a stored blob's bytes behind the store's back."""

    def overwrite(store: BlobStore, digest: str, content: bytes) -> None:
        if isinstance(store, MemoryStore):
            store.corrupt(digest, content)
        elif isinstance(store, LocalStore):
            path = store.path(digest)
            path.chmod(0o644)
            path.write_bytes(content)
        else:
            from modelyard.store import S3Store

            assert isinstance(store, S3Store)
            store.client.put_object(Bucket=store.bucket, Key=store.key(digest), Body=content)

    return overwrite
