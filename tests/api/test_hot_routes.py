"""The hot routes: answered ahead of FastAPI with the same responses, and anything the shortcut
cannot take as written passed on to FastAPI untouched."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from modelyard import Settings, Yard
from modelyard.api import create_app
from modelyard.api._access import Access
from modelyard.api._hot_routes import HotRoutes
from tests.asgi import in_process_client

# A JSON body the shortcut leaves to FastAPI (it takes exactly `application/json`), so the two
# answers to the same request can be compared.
TO_FASTAPI = {"content-type": "application/json; charset=utf-8"}
CHANGING = {"id", "number", "parents", "created_at", "updated_at"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with in_process_client(create_app(Settings(home=tmp_path, user="server"))) as client:
        client.base_url = httpx.URL("http://testserver/api/v1")
        yield client


def _both(client: httpx.Client, method: str, path: str, body: Any) -> list[httpx.Response]:
    hot = client.request(method, path, json=body)
    slow = client.request(method, path, content=json.dumps(body), headers=TO_FASTAPI)
    return [hot, slow]


def test_register_answers_as_fastapi_does(client: httpx.Client) -> None:
    blob = b"tiny model"
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    body = {"params": {"lr": 0.1}, "metrics": {"auc": 0.9}, "tags": {"team": "risk"},
            "description": "d", "blobs": {digest: "dGlueSBtb2RlbA=="}}  # fmt: skip
    hot, slow = _both(client, "POST", "/models/fraud/versions", body)
    assert hot.status_code == slow.status_code == 201
    assert hot.headers["content-type"] == slow.headers["content-type"] == "application/json"
    first, second = hot.json(), slow.json()
    assert (first["number"], second["number"]) == (1, 2) and second["parents"] == ["fraud:1"]
    assert {k: v for k, v in first.items() if k not in CHANGING} == {
        k: v for k, v in second.items() if k not in CHANGING
    }
    assert client.head(f"/blobs/{digest}").status_code == 200


def test_alias_get_and_search_answer_as_fastapi_does(client: httpx.Client) -> None:
    for _ in range(2):
        client.post("/models/fraud/versions", json={"metrics": {"auc": 0.9}})
    hot, slow = _both(client, "PUT", "/models/fraud/aliases/exp/lr", {"version": "fraud:1"})
    assert hot.status_code == slow.status_code == 200 and hot.json() == slow.json()
    assert hot.json()["number"] == 1
    hot = client.get("/version", params={"ref": "fraud@exp/lr"})
    slow = client.get("/version", params={"ref": "fraud@exp/lr", "other": "x"})  # to FastAPI
    assert hot.status_code == slow.status_code == 200 and hot.content == slow.content
    search = {"filter": "metrics.auc > 0.5", "order_by": "version", "limit": 1}
    hot, slow = _both(client, "POST", "/versions/search", search)
    assert hot.status_code == slow.status_code == 200 and hot.content == slow.content
    page = hot.json()
    assert [v["number"] for v in page["versions"]] == [1] and page["next_page_token"]


def test_registry_errors_answer_as_fastapi_does(client: httpx.Client) -> None:
    client.post("/models/fraud/versions", json={})
    hot, slow = _both(client, "PUT", "/models/fraud/aliases/prod", {"version": "fraud:9"})
    assert hot.status_code == slow.status_code == 404 and hot.json() == slow.json()
    assert hot.json()["type"] == "VersionNotFound"
    missing = client.get("/version", params={"ref": "nope"})
    assert missing.status_code == 404 and missing.json()["type"] == "ModelNotFound"
    hot, slow = _both(
        client, "POST", "/models/fraud/versions", {"manifest_digest": "sha256:" + "0" * 64}
    )
    assert hot.status_code == slow.status_code == 400 and hot.json() == slow.json()


@pytest.mark.parametrize(
    ("method", "path", "content", "needle"),
    [
        ("POST", "/versions/search", b'{"limit": NaN}', "body"),  # not JSON to orjson
        ("POST", "/versions/search", b"", "body"),
        ("POST", "/versions/search", b"[1]", "body"),
        ("POST", "/models/fraud/versions", b'{"alias": 3}', "body.alias"),
        ("PUT", "/models/fraud/aliases/prod", b'{"reason": "x"}', "body.version"),
        ("GET", "/version", b"", "query.ref"),
    ],
)
def test_what_the_shortcut_refuses_gets_fastapis_error(
    client: httpx.Client, method: str, path: str, content: bytes, needle: str
) -> None:
    headers = {"content-type": "application/json"} if content else {}
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code == 400
    assert response.json()["type"] == "ConfigurationError" and needle in response.json()["error"]


def test_repeated_or_unexpected_query_parameters_go_to_fastapi(client: httpx.Client) -> None:
    client.post("/models/fraud/versions", json={})
    repeated = client.get("/version", params=[("ref", "nope"), ("ref", "fraud:1")])
    assert repeated.status_code == 200 and repeated.json()["number"] == 1  # FastAPI: the last
    search = client.post("/versions/search?x=1", json={"filter": "name = 'fraud'"})
    assert search.status_code == 200 and len(search.json()["versions"]) == 1


def test_the_acting_user_comes_from_a_trusted_proxy_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, user="server", trusted_proxies=["127.0.0.1"])
    with in_process_client(create_app(settings)) as client:  # its client is 127.0.0.1
        client.base_url = httpx.URL("http://testserver/api/v1")
        client.post("/models/fraud/versions", json={}, headers={"X-Modelyard-User": "ana"})
        moved = client.put("/models/fraud/aliases/prod", json={"version": "fraud:1"},
                           headers={"X-Modelyard-User": "ben"})  # fmt: skip
        assert moved.json()["created_by"] == "ana"
        history = client.get("/models/fraud/alias-history").json()
        assert history[0]["actor"] == "ben"


def test_the_user_header_is_ignored_from_other_addresses(client: httpx.Client) -> None:
    created = client.post("/models/fraud/versions", json={}, headers={"X-Modelyard-User": "ana"})
    assert created.json()["created_by"] == "server"


# The middleware alone, around a stand-in for FastAPI that records what reaches it.


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Scope, list[Message]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        messages = [await receive() for _ in range(scope.get("reads", 0))]
        self.calls.append((scope, messages))


def _call(app: Any, scope: Scope, incoming: list[Message]) -> list[Message]:
    sent: list[Message] = []
    queue = list(incoming)

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _scope(method: str, path: str, **extra: Any) -> Scope:
    headers = [(b"content-type", b"application/json")]
    return {"type": "http", "method": method, "path": path, "query_string": b"",
            "root_path": "", "headers": headers, **extra}  # fmt: skip


def _middleware(inner: Any, yard: Yard) -> HotRoutes:
    access = Access(yard.settings, lambda: yard.local_registry().database, clock=time.monotonic)
    return HotRoutes(inner, yard=yard, access=access, prefix="/api/v1")


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    with Yard(Settings(home=tmp_path, user="server")) as yard:
        yield yard


def test_other_requests_pass_through_untouched(yard: Yard) -> None:
    inner = Recorder()
    middleware = _middleware(inner, yard)
    lifespan: Scope = {"type": "lifespan"}
    _call(middleware, lifespan, [])
    mounted = _scope("GET", "/api/v1/version", root_path="/under", query_string=b"ref=a")
    _call(middleware, mounted, [])
    other = _scope("GET", "/api/v1/models")
    _call(middleware, other, [])
    assert [scope for scope, _ in inner.calls] == [lifespan, mounted, other]


def test_a_refused_body_is_replayed_to_fastapi_chunk_by_chunk(yard: Yard) -> None:
    inner = Recorder()
    middleware = _middleware(inner, yard)
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"filter": ', "more_body": True},
        {"type": "http.request", "body": b"42}", "more_body": False},
    ]
    _call(middleware, _scope("POST", "/api/v1/versions/search", reads=3), list(chunks))
    ((_, received),) = inner.calls
    assert received == [*chunks, {"type": "http.disconnect"}]
    gone: list[Message] = [{"type": "http.disconnect"}]
    _call(middleware, _scope("POST", "/api/v1/versions/search", reads=1), list(gone))
    assert inner.calls[1][1] == gone


def test_a_body_in_chunks_is_answered(yard: Yard) -> None:
    yard.registry.create_version("fraud")
    middleware = _middleware(Recorder(), yard)
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"filter": "name ', "more_body": True},
        {"type": "http.request", "body": b"= 'fraud'\"}"},
    ]
    start, body = _call(middleware, _scope("POST", "/api/v1/versions/search"), chunks)
    assert start["status"] == 200
    assert (b"content-length", str(len(body["body"])).encode()) in start["headers"]
    assert json.loads(body["body"])["versions"][0]["name"] == "fraud"
