"""An S3 endpoint that accepts connections and never answers: every call fails within the
configured bound with `StoreUnavailable` naming the endpoint, and says so while it waits."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from modelyard import Settings, Yard
from modelyard.errors import StoreUnavailable
from modelyard.store import S3Store, digest_bytes


@contextmanager
def silent_endpoint() -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server on a loopback port that accepts every connection, reads nothing and never
    answers; yields its URL and the connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
        listener.close()
        for connection in accepted:
            connection.close()


def silent_settings(
    endpoint: str, home: Path, *, timeout: float = 0.5, retries: int = 1
) -> Settings:
    return Settings(
        home=home,
        store_url="s3://models/prefix",
        s3_endpoint_url=endpoint,
        s3_access_key_id="key",
        s3_secret_access_key="secret",
        s3_region="us-east-1",
        s3_timeout_seconds=timeout,
        s3_retries=retries,
    )


def test_put_to_a_silent_endpoint_fails_within_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with silent_endpoint() as (endpoint, accepted):
        store = S3Store.from_settings(silent_settings(endpoint, tmp_path))
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="modelyard.store"):
            with pytest.raises(StoreUnavailable) as raised:
                store.put(b"weights")  # straight to put_object
        took = time.monotonic() - began
    message = str(raised.value)
    assert endpoint in message and "did not answer" in message
    assert "MODELYARD_S3_ENDPOINT_URL" in message and "MODELYARD_S3_TIMEOUT_SECONDS" in message
    # Two attempts of 0.5 s and botocore's backoff between them (at most 1 s), not minutes.
    assert took < 5, took
    assert len(accepted) >= 2  # it did try again
    retries = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retries) == 1 and "PutObject: attempt 1 of 2 failed" in retries[0]
    assert endpoint in retries[0]  # botocore's error names the URL


def test_no_retries_means_one_attempt(tmp_path: Path) -> None:
    with silent_endpoint() as (endpoint, accepted):
        store = S3Store.from_settings(silent_settings(endpoint, tmp_path, retries=0))
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match="1 attempt"):
            store.exists(digest_bytes(b"weights"))
        assert time.monotonic() - began < 3
    assert len(accepted) == 1


def test_log_model_against_a_silent_endpoint_fails_clearly(tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 1000)
    with silent_endpoint() as (endpoint, _):
        with Yard(silent_settings(endpoint, tmp_path / "home", timeout=0.3)) as yard:
            began = time.monotonic()
            with pytest.raises(StoreUnavailable, match="did not answer"):
                yard.log_model(weights, name="fraud")
            assert time.monotonic() - began < 10  # a few calls, each bounded
            assert yard.registry.list_models() == []  # nothing registered without its bytes


def test_the_defaults_are_bounded() -> None:
    settings = Settings()
    assert settings.s3_timeout_seconds == 10 and settings.s3_retries == 2
    store = S3Store.from_settings(
        settings.model_copy(update={"store_url": "s3://b/p", "s3_region": "us-east-1"})
    )
    config = store.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (10, 10)
    assert config.retries["total_max_attempts"] == 3
