"""What only a real S3 server (SeaweedFS, started by scripts/test) can show."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest

from modelyard import Settings
from modelyard.errors import BucketNotFound, ConfigurationError, StoreAccessDenied, StoreUnavailable
from modelyard.store import S3Store, digest_bytes, open_store, read_bytes
from modelyard.store._multipart import PART_SIZE


def test_large_blob_goes_up_in_parts(s3_store: S3Store) -> None:
    data = np.random.default_rng(0).bytes(2 * PART_SIZE + 12345)
    digest = s3_store.put(iter([data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]))
    assert digest == digest_bytes(data)
    assert read_bytes(s3_store, digest) == data
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(digest))
    assert "-" in head["ETag"]  # a multipart upload's ETag is "<md5>-<parts>"


def test_failed_stream_leaves_nothing(s3_store: S3Store) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * (PART_SIZE + 1)
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        s3_store.put(broken())
    assert list(s3_store.blobs()) == []


def test_repr_and_layout(s3_store: S3Store) -> None:
    digest = s3_store.put(b"abc")
    hexdigest = digest.removeprefix("sha256:")
    assert s3_store.key(digest) == f"{s3_store.prefix}/sha256/{hexdigest[:2]}/{hexdigest}"
    assert repr(s3_store) == f"S3Store('s3://{s3_store.bucket}/{s3_store.prefix}')"
    assert S3Store("b", client=s3_store.client).key(digest).startswith("sha256/")


def test_open_store_gives_s3_store(s3_settings: Settings) -> None:
    store = open_store(s3_settings)
    assert isinstance(store, S3Store)
    assert store.bucket == s3_settings.store_url.split("/")[2]


def test_url_without_bucket(s3_settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="names no bucket"):
        S3Store.from_settings(s3_settings.model_copy(update={"store_url": "s3:///prefix"}))


def test_missing_bucket(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"store_url": "s3://no-such-bucket/x"})
    store = S3Store.from_settings(settings)
    with pytest.raises(BucketNotFound, match="'no-such-bucket' does not exist"):
        store.put(b"x")
    with pytest.raises(BucketNotFound):
        store.get(digest_bytes(b"x"))
    with pytest.raises(BucketNotFound):
        list(store.blobs())


def test_wrong_credentials(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"s3_secret_access_key": "wrong"})
    store = S3Store.from_settings(settings)
    with pytest.raises(StoreAccessDenied, match="MODELYARD_S3_SECRET_ACCESS_KEY"):
        store.put(b"x")
    with pytest.raises(StoreAccessDenied):
        store.exists(digest_bytes(b"x"))


def test_unreachable_endpoint_fails_fast(s3_settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once we leave: nothing listens there
    settings = s3_settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{port}"})
    store = S3Store.from_settings(settings)
    began = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"cannot reach the S3 endpoint .*:{port}"):
        store.put(b"x")
    assert time.monotonic() - began < 30
