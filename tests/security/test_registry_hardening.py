"""Attacks on a real `modelyard server` process, each answered with a 4xx that says what is wrong
(never a 5xx, never a stalled or swollen server): filters that were quadratic or recursed without
end, non-finite and out-of-range numbers, forged page tokens, oversized bodies and inline blobs,
clients that send their request too slowly, and an audit chain rewritten or cut back."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import running_server

API = "/api/v1"
JSON = {"content-type": "application/json"}
LIMITS = {
    "MODELYARD_SERVER_MAX_BODY_BYTES": str(1 << 20),
    "MODELYARD_SERVER_MAX_INLINE_BYTES": "4096",
    "MODELYARD_SERVER_READ_TIMEOUT_SECONDS": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("registry-hardening")
    saved = {name: os.environ.get(name) for name in LIMITS}
    os.environ.update(LIMITS)  # the server process inherits them
    try:
        with running_server(home) as url:
            with httpx.Client(base_url=url + API, timeout=30) as client:
                for number in range(3):
                    metrics = {"auc": 0.8 + number / 100}
                    created = client.post("/models/fraud/versions", json={"metrics": metrics})
                    assert created.status_code == 201, created.text
            yield url, home / "server-home"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def client(server: tuple[str, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0] + API, timeout=30) as client:
        yield client


def refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["error"], response.text


def search(client: httpx.Client, **fields: object) -> httpx.Response:
    return client.post("/versions/search", json=fields)


def test_a_filter_of_20000_digits_is_refused_at_once(client: httpx.Client) -> None:
    def timed(filter: str) -> float:
        started = time.perf_counter()
        response = search(client, filter=filter)
        assert response.status_code in (200, 400)
        return time.perf_counter() - started

    refused(search(client, filter="1" * 20_000), 400, "at most 4096 characters")
    refused(search(client, filter="version = " + "1" * 4000 + "x"), 400, "unexpected character")
    trivial = min(timed("name = 'fraud'") for _ in range(5))
    attack = min(timed("1" * 20_000) for _ in range(5))
    quadratic = min(timed("version = " + "1" * 4000 + "x") for _ in range(5))
    assert attack / trivial < 5 and quadratic / trivial < 5  # was 13.8 s against milliseconds


def test_deep_filters_are_refused(client: httpx.Client) -> None:
    refused(search(client, filter="(" * 2000 + "a = 1" + ")" * 2000), 400, "at most 32 deep")
    refused(search(client, filter="not " * 1000 + "a = 1"), 400, "at most 32 deep")


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
def test_non_finite_numbers_are_refused_and_reads_keep_working(
    client: httpx.Client, number: str
) -> None:
    # Sent as JSON text: Python's json reads 1e999 as infinity and accepts NaN.
    bodies = [
        ("/models/fraud/versions", '{"metrics": {"auc": %s}}'),
        ("/models/fraud/versions", '{"params": {"lr": %s}}'),
        ("/models/fraud/gates", '{"kind": "metric", "config": {"metric": "auc", "op": ">=", '
                                '"value": %s}}'),
    ]  # fmt: skip
    run = client.post("/runs", json={"name": "r"}).json()["id"]
    bodies.append((f"/runs/{run}/metrics", '{"metrics": {"loss": %s}, "step": 1}'))
    for path, body in bodies:
        response = client.post(path, content=body % number, headers=JSON)
        refused(response, 400, "finite")
    assert client.get("/models/fraud/versions").status_code == 200
    assert client.get("/version", params={"ref": "fraud:1"}).status_code == 200
    assert search(client, filter="metrics.auc > 0").status_code == 200


@pytest.mark.parametrize(
    "filter",
    ["version = 1e300", "version = 99999999999999999999", "number in (1, 1e19)", "version > 3e9"],
)
def test_version_numbers_past_64_bits_in_filters(client: httpx.Client, filter: str) -> None:
    refused(search(client, filter=filter), 400, "whole numbers from")


def test_out_of_range_integers_answer_400(client: httpx.Client) -> None:
    huge = client.post("/versions/search", content=f'{{"limit": {10**30}}}', headers=JSON)
    refused(huge, 400, "limit")
    refused(search(client, limit=2**63), 400, "limit")
    refused(client.get("/audit", params={"limit": 10**30}), 400, "limit")
    run = client.post("/runs", json={"name": "r"}).json()["id"]
    for step in (2**73, 2**63):
        body = f'{{"metrics": {{"loss": 1}}, "step": {step}}}'
        response = client.post(f"/runs/{run}/metrics", content=body, headers=JSON)
        refused(response, 400, "step")
    refused(client.get("/version", params={"ref": "fraud:99999999999999999999"}), 400, "fraud")
    refused(client.get("/version", params={"ref": "fraud:9999999999"}), 400, "up to 2147483647")
    gate = {"kind": "approval", "config": {"count": 2**73}}
    refused(client.post("/models/fraud/gates", json=gate), 400, "64 bits")
    signature = {"signature": {"inputs": [{"name": "x", "shape": [2**63]}]}}
    refused(client.post("/models/fraud/versions", json=signature), 400, "64 bits")


def test_forged_page_tokens_answer_400(client: httpx.Client) -> None:
    token = search(client, limit=1).json()["next_page_token"]
    assert search(client, limit=1, page_token=token).status_code == 200
    payload, _, signature = token.partition(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for offset in (10**30, 2**63, 0, 2):  # the token's own offset is 1
        edited = json.dumps({"o": offset, "h": body["h"]}).encode()
        forged = base64.urlsafe_b64encode(edited).decode().rstrip("=")
        for attempt in (forged, f"{forged}.{signature}"):
            refused(search(client, limit=1, page_token=attempt), 400, "page token is not valid")


def test_an_oversized_body_is_refused_before_it_is_read(server: tuple[str, Path]) -> None:
    host, port = server[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /api/v1/models/fraud/versions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 419430400\r\n\r\n{"
        )  # 400 MiB announced; the server answers without waiting for it
        answer = receive_all(connection)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"over the limit of 1048576 bytes" in answer


def receive_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    parts = []
    while part := connection.recv(65536):
        parts.append(part)
    return b"".join(parts)


def test_a_chunked_body_is_counted_as_it_arrives(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"description": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = client.post("/models/fraud/versions", content=chunks(), headers=JSON)
    refused(response, 413, "over the limit of 1048576 bytes")


def test_inline_blobs_have_their_own_cap(client: httpx.Client) -> None:
    blob = base64.b64encode(b"w" * 8192).decode()
    digest = "sha256:" + "0" * 64
    response = client.post("/models/fraud/versions", json={"blobs": {digest: blob}})
    refused(response, 413, "sent inline with this registration")
    pieces = [os.urandom(1000), os.urandom(1000), os.urandom(2096)]  # exactly the cap: accepted
    blobs = {
        f"sha256:{hashlib.sha256(p).hexdigest()}": base64.b64encode(p).decode() for p in pieces
    }
    assert client.post("/models/fraud/versions", json={"blobs": blobs}).status_code == 201
    assert all(client.head(f"/blobs/{digest}").status_code == 200 for digest in blobs)


def test_the_client_uploads_what_the_server_will_not_take_inline(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    from modelyard import Settings, Yard

    content = os.urandom(8192)
    digest = f"sha256:{hashlib.sha256(content).hexdigest()}"
    with Yard(Settings(home=tmp_path, url=server[0])) as yard:
        with yard.registry.staging(yard.store) as staged:
            assert staged.put(content) == digest  # over the server's inline cap: sent at once
            version = yard.registry.create_version("fraud", description="inline")
        assert version.description == "inline"
        assert b"".join(yard.store.get(digest)) == content


def test_blob_uploads_keep_their_own_larger_limit(client: httpx.Client) -> None:
    content = os.urandom(3 << 20)  # over the body limit of 1 MiB, under the blob limit
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    assert client.put(f"/blobs/{digest}", content=content).status_code == 201
    assert client.get(f"/blobs/{digest}").content == content


def test_slow_clients_are_cut_off(server: tuple[str, Path]) -> None:
    host, port = server[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as headers_only:
        headers_only.sendall(b"POST /api/v1/versions/search HTTP/1.1\r\nHost: x\r\n")
        with socket.create_connection((host, int(port)), timeout=10) as slow_body:
            slow_body.sendall(
                b"POST /api/v1/versions/search HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            time.sleep(2)
            answer = receive_all(slow_body)
        assert headers_only.recv(4096) == b""  # closed: the headers never finished
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1 seconds" in answer
    assert httpx.get(f"{server[0]}/health").status_code == 200


def modelyard(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_audit_head_exposes_truncation_and_rewrites(
    server: tuple[str, Path], client: httpx.Client
) -> None:
    url, home = server
    head = client.get("/audit/head").json()
    assert head["seq"] >= 4 and len(head["hash"]) == 64
    printed = modelyard(home, "audit", "head")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == f"{head['seq']}:{head['hash']}"  # the CLI shares the key
    recorded = printed.stdout.strip()
    assert client.get("/audit/verify", params={"head": recorded}).json()["ok"] is True
    assert modelyard(home, "audit", "verify", "--head", recorded).returncode == 0

    database = sqlite3.connect(home / "registry.db")
    with database:  # someone with write access deletes the last events and moves the head back
        database.execute("DELETE FROM audit_events WHERE seq > ?", (head["seq"] - 2,))
        kept = database.execute(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        database.execute("UPDATE audit_head SET seq = ?, hash = ?", kept)
    database.close()
    assert client.get("/audit/verify").json()["ok"] is True  # without the head, a clean cut
    check = client.get("/audit/verify", params={"head": recorded}).json()
    assert check["ok"] is False and "cut back" in check["reason"]
    cut = modelyard(home, "audit", "verify", "--head", recorded)
    assert cut.returncode == 1 and "cut back" in cut.stderr

    with sqlite3.connect(home / "registry.db") as database:  # now rewrite event 2 without the key
        database.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    rewritten = modelyard(home, "audit", "verify")
    assert rewritten.returncode == 1 and "event 2" in rewritten.stderr
    with_other_key = subprocess.run(
        [sys.executable, "-m", "modelyard", "audit", "verify"],
        env={**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_SECRET_KEY": "not the key",
             "MODELYARD_DATABASE_URL": f"sqlite:///{home / 'registry.db'}"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert with_other_key.returncode == 1 and "another key" in with_other_key.stderr
    refused(client.get("/audit/verify", params={"head": "nonsense"}), 400, "SEQ:HASH")
