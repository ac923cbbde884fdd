"""Idempotent registration: a retry with the same key registers once, whichever way it comes in
(the registry itself, the SDK in-process and over a real server, a connection dropped after the
commit), and the same key with a different request is refused with 409."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard import Settings, Yard
from modelyard.api import create_app
from modelyard.errors import IdempotencyConflict, InvalidReference
from modelyard.registry import Registry
from tests.asgi import in_process_client
from tests.conftest import YardFactory
from tests.servers import running_server

# the registry ---------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_version_made(registry: Registry) -> None:
    first = registry.create_version("fraud", params={"lr": 0.1}, idempotency_key="k-1")
    again = registry.create_version("fraud", params={"lr": 0.1}, idempotency_key="k-1")
    assert (again.id, again.number) == (first.id, 1)
    assert [v.number for v in registry.list_versions("fraud")] == [1]
    assert registry.get_model("fraud").latest_version == 1  # no number taken by the retry
    assert registry.create_version("fraud", idempotency_key="k-2").number == 2
    creates = [e for e in registry.audit_log(target="fraud:1") if e.action == "version.create"]
    assert len(creates) == 1


def test_the_same_key_with_another_request_is_a_conflict(registry: Registry) -> None:
    registry.create_version("fraud", params={"lr": 0.1}, idempotency_key="k-1")
    with pytest.raises(IdempotencyConflict) as raised:
        registry.create_version("fraud", params={"lr": 0.2}, idempotency_key="k-1")
    assert raised.value.status_code == 409
    assert "'k-1'" in str(raised.value) and "fraud:1" in str(raised.value)
    assert [v.number for v in registry.list_versions("fraud")] == [1]


def test_keys_belong_to_a_model_and_go_with_their_version(registry: Registry) -> None:
    fraud = registry.create_version("fraud", idempotency_key="k-1")
    churn = registry.create_version("churn", idempotency_key="k-1")
    assert (fraud.name, churn.name) == ("fraud", "churn")
    registry.delete_version(fraud.ref)
    assert registry.create_version("fraud", idempotency_key="k-1").number == 2


def test_a_key_must_be_printable(registry: Registry) -> None:
    for key in ("", "has space", "x" * 256, "é"):
        with pytest.raises(InvalidReference):
            registry.create_version("fraud", idempotency_key=key)


def test_concurrent_retries_register_once(registry: Registry) -> None:
    # The second of two racing requests loses on the key's primary key (PostgreSQL) or waits
    # for the write lock (SQLite); either way it answers with the first one's version.
    for round_ in range(5):
        keys = [f"race-{round_}"] * 4
        with ThreadPoolExecutor(4) as pool:
            made = list(pool.map(
                lambda key: registry.create_version("fraud", tags={"t": "1"}, idempotency_key=key),
                keys,
            ))  # fmt: skip
        assert len({version.id for version in made}) == 1
    assert len(registry.list_versions("fraud")) == 5


# the SDK, each way in -------------------------------------------------------------------------


def test_log_model_with_the_same_key_registers_once(make_yard: YardFactory, tmp_path: Path) -> None:
    yard = make_yard()
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00\x01" * 100)
    first = yard.log_model(weights, name="fraud", params={"lr": 0.1}, idempotency_key="run-7")
    again = yard.log_model(weights, name="fraud", params={"lr": 0.1}, idempotency_key="run-7")
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict) as raised:
        yard.log_model(weights, name="fraud", params={"lr": 0.2}, idempotency_key="run-7")
    assert raised.value.status_code == 409 and "run-7" in str(raised.value)
    # Without a key of the caller's own, each call is a new registration (a fresh key each).
    yard.log_model(weights, name="fraud", params={"lr": 0.1})
    assert [v.number for v in yard.list_versions("fraud")] == [2, 1]


class DropsFirstAnswer:
    """ASGI app around `app` that registers the first version for real, then drops the answer,
    as a server killed (or a network cut) after the commit would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self.dropped = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/versions") and not self.dropped:
            self.dropped += 1

            async def swallow(message: Any) -> None:
                pass

            await self.app(scope, receive, swallow)
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        await self.app(scope, receive, send)


def test_sdk_retries_a_lost_answer_in_process(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", user="ana")
    app = DropsFirstAnswer(create_app(settings))
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"weights")
    with in_process_client(app) as client:
        yard = Yard(settings, url="http://testserver", http_client=client)
        version = yard.log_model(weights, name="fraud")
        assert app.dropped == 1
        assert [v.id for v in yard.list_versions("fraud")] == [version.id]


# a real server process ------------------------------------------------------------------------


def test_two_identical_requests_to_a_server_register_once(tmp_path: Path) -> None:
    with running_server(tmp_path) as url:
        path = f"{url}/api/v1/models/fraud/versions"
        body = {"params": {"lr": "0.1"}, "tags": {"team": "risk"}}
        key = {"Idempotency-Key": "6f1c2a"}
        first = httpx.post(path, json=body, headers=key)
        again = httpx.post(path, json=body, headers=key)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json()["id"] == first.json()["id"]
        other = httpx.post(path, json={**body, "params": {"lr": "0.2"}}, headers=key)
        assert other.status_code == 409
        assert other.json()["type"] == "IdempotencyConflict" and "6f1c2a" in other.json()["error"]
        listed = httpx.get(path).json()
        assert [v["number"] for v in listed] == [1]
        # Through FastAPI (the hot route's shortcut does not take this body) the key counts too.
        content = b'{"params": {"lr": "0.1"}, "tags": {"team": "risk"}}'
        typed = {**key, "content-type": "application/json; charset=utf-8"}
        slow = httpx.post(path, content=content, headers=typed)
        assert slow.status_code == 201 and slow.json()["id"] == first.json()["id"]


@contextmanager
def dropping_proxy(upstream: str) -> Iterator[dict[str, int]]:
    """A TCP proxy to `upstream` (`http://host:port`) that, for the first registration it
    carries, lets the server commit and answer, then cuts the client's connection without
    passing the answer on. Yields its port and counts: connections and dropped answers."""
    host, port = upstream.removeprefix("http://").split(":")
    listener = socket.create_server(("127.0.0.1", 0))
    counts = {"port": listener.getsockname()[1], "connections": 0, "dropped": 0}
    opened: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(target: Any, *args: Any) -> None:
        threads.append(threading.Thread(target=target, args=args, daemon=True))
        threads[-1].start()

    def pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(client: socket.socket) -> None:
        server = socket.create_connection((host, int(port)))
        opened.append(server)
        first = client.recv(65536)
        server.sendall(first)
        line = first.split(b"\r\n", 1)[0]
        if line.startswith(b"POST ") and b"/versions " in line and not counts["dropped"]:
            counts["dropped"] += 1
            start(pump, client, server)  # the rest of the request
            server.recv(65536)  # the server has committed and answers: the answer is lost
            for end in (client, server):
                end.shutdown(socket.SHUT_RDWR)
            return
        start(pump, client, server)
        pump(server, client)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            opened.append(client)
            counts["connections"] += 1
            start(serve, client)

    start(accept)
    try:
        yield counts
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
        listener.close()
        for connection in opened:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(5)
        for connection in opened:
            connection.close()


def test_sdk_retries_a_lost_answer_from_a_real_server(tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"weights")
    with running_server(tmp_path) as url, dropping_proxy(url) as proxy:
        settings = Settings(home=tmp_path / "client", user="ana")
        with Yard(settings, url=f"http://127.0.0.1:{proxy['port']}") as yard:
            version = yard.log_model(weights, name="fraud", tags={"try": "1"})
        assert proxy["dropped"] == 1 and proxy["connections"] >= 2
        listed = httpx.get(f"{url}/api/v1/models/fraud/versions").json()
        assert [v["id"] for v in listed] == [version.id]
