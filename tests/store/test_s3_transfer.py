"""Blobs in parts against the real SeaweedFS: parallel multipart puts and ranged parallel gets."""

from __future__ import annotations

import io
import threading
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import (
    BlobNotFound,
    ConfigurationError,
    DigestMismatch,
    IntegrityError,
    ModelyardError,
)
from modelyard.store import S3Store, digest_bytes, read_bytes

PART = 5 << 20
"""The smallest part size S3 allows, so a few parts stay small."""


@pytest.fixture
def parted(s3_store: S3Store) -> S3Store:
    """The test's S3 store with 5 MiB parts, three at a time."""
    return S3Store(
        s3_store.bucket, prefix=s3_store.prefix, client=s3_store.client, part_size=PART, threads=3
    )


def random_bytes(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(size)


def parts_of(store: S3Store, digest: str) -> int:
    """How many parts the object was uploaded in (1 for a plain put)."""
    etag = store.client.head_object(Bucket=store.bucket, Key=store.key(digest))["ETag"]
    return int(etag.strip('"').partition("-")[2] or 1)


def pending_uploads(store: S3Store) -> list[str]:
    """Keys of multipart uploads under the prefix neither completed nor aborted."""
    answer = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def test_file_goes_up_in_parts_and_comes_back_in_order(parted: S3Store, tmp_path: Path) -> None:
    data = random_bytes(3 * PART + 12345)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    with path.open("rb") as handle:
        digest = parted.put(handle)
    assert digest == digest_bytes(data)
    assert parts_of(parted, digest) == 4
    pieces = list(parted.get(digest))
    assert len(pieces) > 1
    assert b"".join(pieces) == data
    assert pending_uploads(parted) == []


def test_bytes_and_streams_go_up_in_parts(parted: S3Store) -> None:
    data = random_bytes(3 * PART + 1, seed=1)
    assert parted.put(data) == digest_bytes(data)
    assert parts_of(parted, digest_bytes(data)) == 4
    other = random_bytes(3 * PART + 2, seed=2)
    stream = iter([other[i : i + 4096] for i in range(0, len(other), 4096)])
    assert parted.put(stream) == digest_bytes(other)
    assert parts_of(parted, digest_bytes(other)) == 4
    buffered = random_bytes(2 * PART + 3, seed=3)
    assert parted.put(io.BytesIO(buffered)) == digest_bytes(buffered)  # seekable, no fileno
    for each in (data, other, buffered):
        assert read_bytes(parted, digest_bytes(each)) == each


def test_file_put_starts_where_the_handle_is(parted: S3Store, tmp_path: Path) -> None:
    data = random_bytes(2 * PART + 5, seed=4)
    path = tmp_path / "blob"
    path.write_bytes(b"header" + data)
    with path.open("rb") as handle:
        handle.seek(6)
        assert parted.put(handle) == digest_bytes(data)
    assert read_bytes(parted, digest_bytes(data)) == data


def test_corrupt_object_raises_on_get(parted: S3Store) -> None:
    data = random_bytes(4 * PART, seed=5)
    digest = parted.put(data)
    tampered = bytearray(data)
    tampered[3 * PART + 7] ^= 0xFF  # in the last part: fetched in parallel, checked at the end
    parted.client.put_object(Bucket=parted.bucket, Key=parted.key(digest), Body=bytes(tampered))
    with pytest.raises(IntegrityError, match=digest):
        b"".join(parted.get(digest))


def test_truncated_object_raises_on_get(parted: S3Store) -> None:
    data = random_bytes(3 * PART, seed=6)
    digest = parted.put(data)
    parted.client.put_object(Bucket=parted.bucket, Key=parted.key(digest), Body=data[:PART])
    with pytest.raises(IntegrityError):
        b"".join(parted.get(digest))


def test_missing_blob(parted: S3Store) -> None:
    with pytest.raises(BlobNotFound):
        parted.get(digest_bytes(b"never stored"))


def test_empty_blob_round_trips(parted: S3Store) -> None:
    digest = parted.put(b"")
    assert b"".join(parted.get(digest)) == b""


class FailingFile(io.BytesIO):
    """An in-memory file whose reads past `limit` fail, as a disk error would."""

    def __init__(self, data: bytes, *, limit: int) -> None:
        super().__init__(data)
        self.limit = limit

    def read(self, size: int | None = -1, /) -> bytes:
        if self.tell() >= self.limit:
            raise OSError("read error")
        return super().read(size)


def test_failed_upload_is_aborted(parted: S3Store) -> None:
    data = random_bytes(4 * PART, seed=7)
    digest = digest_bytes(data)
    with pytest.raises(OSError, match="read error"):
        parted.put(FailingFile(data, limit=2 * PART), digest=digest)
    assert not parted.exists(digest)
    assert pending_uploads(parted) == []


def test_wrong_digest_is_refused_and_aborted(parted: S3Store, tmp_path: Path) -> None:
    data = random_bytes(3 * PART, seed=8)
    path = tmp_path / "blob"
    path.write_bytes(data)
    claimed = digest_bytes(b"something else")
    with path.open("rb") as handle, pytest.raises(DigestMismatch, match=digest_bytes(data)):
        parted.put(handle, digest=claimed)
    assert not parted.exists(claimed)
    assert pending_uploads(parted) == []


def test_get_closed_early_stops_its_threads(parted: S3Store) -> None:
    data = random_bytes(4 * PART, seed=9)
    digest = parted.put(data)
    before = threading.active_count()
    pieces = parted.get(digest)
    assert isinstance(pieces, Generator)
    first = next(pieces)
    assert first and data.startswith(first)
    pieces.close()  # waits for the parts in flight, drops the rest
    assert threading.active_count() == before


def test_part_size_must_be_positive(s3_store: S3Store) -> None:
    with pytest.raises(ConfigurationError, match="part size 1048576 must be at least"):
        S3Store(s3_store.bucket, client=s3_store.client, part_size=1 << 20)


def test_file_changed_during_put_is_refused(parted: S3Store, tmp_path: Path) -> None:
    data = random_bytes(3 * PART, seed=10)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)

    def touch(**_: object) -> None:  # another writer, while the first part goes up
        with path.open("r+b") as handle:
            handle.write(b"changed")

    parted.client.meta.events.register_first("before-call.s3.UploadPart", touch)
    try:
        with path.open("rb") as handle, pytest.raises(ModelyardError, match="changed while"):
            parted.put(handle)
    finally:
        parted.client.meta.events.unregister("before-call.s3.UploadPart", touch)
    assert not parted.exists(digest_bytes(data))
    assert pending_uploads(parted) == []
