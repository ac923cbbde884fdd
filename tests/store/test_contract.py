"""The contract every BlobStore keeps, run against each implementation."""

from __future__ import annotations

import hashlib
import io

import pytest

from modelyard.errors import BlobNotFound, IntegrityError, InvalidReference
from modelyard.store import BlobStore, read_bytes

from .conftest import CorruptFn


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_put_bytes_returns_sha256_digest(store: BlobStore) -> None:
    digest = store.put(b"hello")
    assert digest == digest_of(b"hello")
    assert store.exists(digest)
    assert read_bytes(store, digest) == b"hello"


def test_put_streams_from_file_and_iterator(store: BlobStore) -> None:
    data = bytes(range(256)) * 20_000  # 5 MB, several read pieces
    from_file = store.put(io.BytesIO(data))
    from_iter = store.put(iter([data[:100], data[100:]]))
    assert from_file == from_iter == digest_of(data)
    assert read_bytes(store, from_file) == data


def test_get_streams_in_pieces(store: BlobStore) -> None:
    data = b"x" * (3 << 20)
    digest = store.put(data)
    pieces = list(store.get(digest))
    assert len(pieces) >= 1
    assert b"".join(pieces) == data


def test_empty_blob(store: BlobStore) -> None:
    digest = store.put(b"")
    assert digest == digest_of(b"")
    assert read_bytes(store, digest) == b""


def test_put_is_idempotent(store: BlobStore) -> None:
    first = store.put(b"same")
    second = store.put(b"same")
    assert first == second
    assert [info.digest for info in store.blobs()].count(first) == 1


def test_put_with_known_digest_skips_existing(store: BlobStore) -> None:
    digest = store.put(b"known")
    assert store.put(b"ignored because known", digest=digest) == digest
    assert read_bytes(store, digest) == b"known"


def test_put_with_known_digest_stores_new_blob(store: BlobStore) -> None:
    digest = digest_of(b"fresh")
    assert store.put(b"fresh", digest=digest) == digest
    assert read_bytes(store, digest) == b"fresh"


def test_missing_blob(store: BlobStore) -> None:
    digest = digest_of(b"never stored")
    assert not store.exists(digest)
    with pytest.raises(BlobNotFound, match=digest):
        store.get(digest)
    assert store.delete(digest) is False


def test_delete(store: BlobStore) -> None:
    digest = store.put(b"doomed")
    assert store.delete(digest) is True
    assert not store.exists(digest)


def test_blobs_lists_digest_and_size(store: BlobStore) -> None:
    a = store.put(b"a")
    b = store.put(b"bb")
    listed = {info.digest: info.size for info in store.blobs()}
    assert listed == {a: 1, b: 2}


@pytest.mark.parametrize("bad", ["", "sha256:xyz", "md5:" + "0" * 32, "sha256:" + "A" * 64])
def test_malformed_digest_is_rejected(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidReference, match="64 lowercase hex"):
        store.exists(bad)


def test_corruption_is_detected_before_the_last_byte(store: BlobStore, corrupt: CorruptFn) -> None:
    data = b"precious weights " * 100_000
    digest = store.put(data)
    corrupt(store, digest, data[:-1] + b"!")
    received = bytearray()
    with pytest.raises(IntegrityError, match=digest) as caught:
        for piece in store.get(digest):
            received += piece
    assert caught.value.status_code == 500
    assert bytes(received) != data
