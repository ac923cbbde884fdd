"""Identity and roles on a real `modelyard server --auth` process: every attack of the "No
identity" list is refused, roles are checked per model, and the audit names the principal."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from modelyard import Settings, Yard
from modelyard.errors import PermissionDenied, Unauthenticated
from modelyard.registry import Database, Principals
from modelyard.store import digest_bytes
from tests.servers import running_server

API = "/api/v1"
CACHE_SECONDS = 0.5


@dataclass
class Server:
    url: str
    home: Path
    tokens: dict[str, str]

    def principals(self, actor: str = "root") -> Principals:
        database = Database(f"sqlite:///{self.home / 'server-home' / 'registry.db'}")
        database.open()
        return Principals(database, actor=actor)

    def client(self, who: str | None = None, **headers: str) -> httpx.Client:
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return httpx.Client(base_url=self.url + API, headers=headers, timeout=30)


GRANTS = [("ana", "admin", "*"), ("bob", "approver", "*"), ("ed", "editor", "*"),
          ("rita", "reader", "*"), ("tess", "reader", "*"),
          ("fran", "editor", "fraud-*")]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("auth")
    env = {"MODELYARD_AUTH": "true", "MODELYARD_USER": "server",
           "MODELYARD_AUTH_CACHE_SECONDS": str(CACHE_SECONDS)}  # fmt: skip
    with running_server(home, env=env) as url:
        state = Server(url, home, {})
        principals = state.principals()
        for user, role, models in GRANTS:
            principals.grant(user, role, models=models)
            state.tokens[user] = principals.create_token(user=user).secret
        state.tokens["nobody"] = principals.create_token(user="nobody").secret
        principals.database.close()
        with state.client("ana") as ana:
            ana.post("/models/fraud/versions", json={})
            ana.put("/models/fraud/aliases/production", json={"version": "fraud:1"})
            gate = ana.post("/models/fraud/gates", json={"kind": "approval"}).json()
        state.tokens["gate"] = gate["id"]
        yield state


def _refused(response: httpx.Response, status: int, kind: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["type"] == kind
    return body


def test_anonymous_requests_are_refused(server: Server) -> None:
    blob = b"payload"
    digest = digest_bytes(blob)
    with server.client(**{"X-Modelyard-User": "bob"}) as anonymous:
        attempts = [
            anonymous.post("/models/fraud/versions", json={}),  # a hot route
            anonymous.post("/models/evil/versions",
                           json={"blobs": {digest: base64.b64encode(blob).decode()}}),
            anonymous.delete("/models/fraud"),
            anonymous.delete(f"/models/fraud/gates/{server.tokens['gate']}"),
            anonymous.put("/models/fraud/aliases/production", json={"version": "fraud:1"}),
            anonymous.post("/version/approvals", params={"ref": "fraud:1"}, json={}),
            anonymous.get("/version", params={"ref": "fraud:1"}),
            anonymous.post("/versions/search", json={}),
            anonymous.get("/models"),
            anonymous.get("/audit"),
            anonymous.put(f"/blobs/{digest}", content=blob),
            anonymous.get("/tokens"),
        ]  # fmt: skip
        for response in attempts:
            body = _refused(response, 401, "Unauthenticated")
            assert response.headers["www-authenticate"] == "Bearer"
            assert "MODELYARD_TOKEN" in str(body["error"])
        head = anonymous.head(f"/blobs/{digest}")
        assert head.status_code == 401
        wrong = anonymous.get("/models", headers={"Authorization": "Basic YTpi"})
        assert "Bearer <token>" in str(_refused(wrong, 401, "Unauthenticated")["error"])
        forged = anonymous.get("/models", headers={"Authorization": "Bearer myd_forged"})
        assert "does not know" in str(_refused(forged, 401, "Unauthenticated")["error"])
    with server.client("ana") as ana:
        assert ana.head(f"/blobs/{digest}").status_code == 404  # nothing was stored
        assert ana.get("/models/fraud/versions").json()[0]["number"] == 1
        assert ana.get("/models/fraud/gates").json() != []
        assert ana.get("/models/evil").status_code == 404


def test_blobs_need_a_role(server: Server) -> None:
    blob = b"secret weights"
    digest = digest_bytes(blob)
    with server.client("ed") as ed, server.client("rita") as rita:
        assert ed.put(f"/blobs/{digest}", content=blob).status_code == 201
        assert rita.get(f"/blobs/{digest}").content == blob
        _refused(rita.put(f"/blobs/{digest}", content=blob), 403, "PermissionDenied")
    with server.client("nobody") as nobody:  # a valid token with no grant at all
        _refused(nobody.get(f"/blobs/{digest}"), 403, "PermissionDenied")
        assert nobody.head(f"/blobs/{digest}").status_code == 403
    with server.client() as anonymous:
        _refused(anonymous.get(f"/blobs/{digest}"), 401, "Unauthenticated")


def test_a_reader_cannot_write(server: Server) -> None:
    with server.client("rita") as rita:
        assert rita.get("/version", params={"ref": "fraud:1"}).status_code == 200
        assert rita.post("/versions/search", json={}).status_code == 200
        refused = _refused(rita.post("/models/fraud/versions", json={}), 403, "PermissionDenied")
        assert refused["details"] == {"principal": "rita", "role": "editor", "model": "fraud"}
        assert "needs the editor role on model 'fraud'" in str(refused["error"])
        _refused(rita.put("/version/tags", params={"ref": "fraud:1", "key": "k"},
                          json={"value": "v"}), 403, "PermissionDenied")  # fmt: skip
        patched = _refused(rita.patch("/models/fraud", json={"description": "mine"}), 403,
                           "PermissionDenied")  # fmt: skip
        assert patched["details"] == {"principal": "rita", "role": "editor", "model": "fraud"}
        _refused(rita.post("/runs", json={}), 403, "PermissionDenied")


def test_runs_are_searched_by_readers_only(server: Server) -> None:
    with server.client("ed") as ed:
        made = ed.post("/runs", json={"name": "run-search"}).json()
    with server.client("rita") as rita:
        found = rita.get("/runs", params={"q": "name = 'run-search'", "limit": 5}).json()
        assert [run["id"] for run in found] == [made["id"]]
        _refused(rita.get("/runs", params={"q": "nope = 1"}), 400, "InvalidFilter")
    with server.client("nobody") as nobody:
        _refused(nobody.get("/runs"), 403, "PermissionDenied")


def test_an_editor_cannot_move_production_or_delete(server: Server) -> None:
    with server.client("ed") as ed:
        version = ed.post("/models/fraud/versions", json={}).json()
        ref = f"fraud:{version['number']}"
        assert ed.put("/models/fraud/aliases/candidate", json={"version": ref}).status_code == 200
        committed = ed.post("/models/fraud/versions", json={"alias": "production"})
        _refused(committed, 403, "PermissionDenied")  # registering onto production moves it
        assert ed.post("/models/fraud/versions", json={"alias": "dev"}).status_code == 201
        moved = ed.put("/models/fraud/aliases/production", json={"version": ref})
        assert _refused(moved, 403, "PermissionDenied")["details"]["role"] == "approver"  # type: ignore[index]
        for response in [
            ed.delete("/models/fraud/aliases/production"),
            ed.post("/models/fraud/rollback", json={}),
            ed.post("/version/transitions", params={"ref": ref},
                    json={"state": "production"}),
        ]:  # fmt: skip
            _refused(response, 403, "PermissionDenied")
        for response in [
            ed.delete("/models/fraud"),
            ed.delete("/version", params={"ref": ref}),
            ed.post("/models/fraud/gates", json={"kind": "signature"}),
            ed.delete(f"/models/fraud/gates/{server.tokens['gate']}"),
            ed.get("/tokens"),
            ed.post("/grants", json={"subject": "ed", "role": "admin"}),
        ]:
            assert _refused(response, 403, "PermissionDenied")["details"]["role"] == "admin"  # type: ignore[index]
        _refused(ed.post("/version/approvals", params={"ref": "fraud:1"}, json={}), 403,
                 "PermissionDenied")  # fmt: skip
    with server.client("ana") as ana:
        assert ana.get("/models/fraud").json()["aliases"]["production"] == 1


def test_self_approval_is_refused_by_principal_whatever_the_header(server: Server) -> None:
    with server.client("bob", **{"X-Modelyard-User": "someone-else"}) as bob:
        version = bob.post("/models/fraud/versions", json={}).json()
        assert version["created_by"] == "bob"
        ref = f"fraud:{version['number']}"
        _refused(bob.post("/version/approvals", params={"ref": ref}, json={}), 403,
                 "SelfApproval")  # fmt: skip
    with server.client("ana") as ana:
        assert ana.post("/version/approvals", params={"ref": ref}, json={}).status_code == 204
        events = ana.get("/audit", params={"target": ref}).json()
    assert [(e["action"], e["actor"]) for e in events] == [
        ("version.create", "bob"),
        ("version.approve", "ana"),
    ]


def test_the_audit_actor_is_the_principal(server: Server) -> None:
    with server.client("ed", **{"X-Modelyard-User": "mallory"}) as ed:
        ed.post("/models/audited/versions", json={})
        ed.put("/models/audited/aliases/dev", json={"version": "audited:1"})
        events = ed.get("/audit", params={"target": "audited"}).json()
    assert {e["actor"] for e in events} == {"ed"}
    assert len(events) >= 2


def test_grants_per_model_pattern(server: Server) -> None:
    with server.client("fran") as fran:
        assert fran.post("/models/fraud-eu/versions", json={}).status_code == 201
        refused = _refused(fran.post("/models/churn/versions", json={}), 403, "PermissionDenied")
        assert refused["details"]["model"] == "churn"  # type: ignore[index]
        described = fran.patch("/models/fraud-eu", json={"tags": {"team": "eu"}})
        assert described.json()["tags"] == {"team": "eu"}
        _refused(fran.patch("/models/fraud", json={"tags": {}}), 403, "PermissionDenied")
        assert [m["name"] for m in fran.get("/models").json()] == ["fraud-eu"]
        found = fran.post("/versions/search", json={}).json()["versions"]
        assert {v["name"] for v in found} == {"fraud-eu"}
        assert {e["target"].split(":")[0] for e in fran.get("/audit").json()} == {"fraud-eu"}
        _refused(fran.get("/version", params={"ref": "fraud:1"}), 403, "PermissionDenied")
        _refused(fran.get("/audit", params={"target": "fraud"}), 403, "PermissionDenied")


def test_expired_and_revoked_tokens_are_refused(server: Server) -> None:
    principals = server.principals()
    try:
        expired = principals.create_token(user="tess", expires_in=timedelta(seconds=-1))
        doomed = principals.create_token(user="tess")
        other = principals.create_token(user="tess")
    finally:
        principals.database.close()
    for secret, word in [(expired.secret, "expired"), (doomed.secret, None)]:
        with httpx.Client(base_url=server.url + API, timeout=30) as client:
            response = client.get("/models", headers={"Authorization": f"Bearer {secret}"})
            if word:
                assert word in str(_refused(response, 401, "Unauthenticated")["error"])
            else:
                assert response.status_code == 200
    with server.client("ana") as ana:  # revoked through the server: refused at once there
        assert ana.delete(f"/tokens/{doomed.token.id}").json()["revoked_at"] is not None
    with httpx.Client(base_url=server.url + API, timeout=30) as client:
        refused = client.get("/models", headers={"Authorization": f"Bearer {doomed.secret}"})
        assert "revoked" in str(_refused(refused, 401, "Unauthenticated")["error"])
        headers = {"Authorization": f"Bearer {other.secret}"}
        assert client.get("/models", headers=headers).status_code == 200  # now cached
        principals = server.principals()
        try:  # revoked in the database, behind the server's back: refused within the TTL
            principals.revoke_token(other.token.id)
        finally:
            principals.database.close()
        time.sleep(CACHE_SECONDS + 0.2)
        _refused(client.post("/versions/search", json={}, headers=headers), 401,
                 "Unauthenticated")  # fmt: skip


def test_the_sdk_sends_the_token_and_says_what_is_missing(server: Server) -> None:
    def yard(token: str | None) -> Yard:
        return Yard(Settings(home=server.home / "client", url=server.url, token=token))

    with yard(server.tokens["ed"]) as ed:
        version = ed.registry.create_version("sdk-model", params={"lr": "0.1"})
        assert version.created_by == "ed"
        with pytest.raises(PermissionDenied, match="needs the approver role on model 'sdk-model'"):
            ed.set_alias("sdk-model", "production", version.ref)
    with yard(None) as anonymous:
        with pytest.raises(Unauthenticated, match="set MODELYARD_TOKEN") as caught:
            anonymous.get_model("sdk-model")
        assert caught.value.status_code == 401
        with pytest.raises(Unauthenticated):
            anonymous.store.exists(digest_bytes(b"x"))
    with yard(server.tokens["rita"]) as rita:
        assert rita.get_model("sdk-model").latest_version == 1
        with pytest.raises(PermissionDenied):
            rita.store.put(b"x")


def test_an_anonymous_body_is_refused_before_it_is_read(server: Server) -> None:
    # Headers promising 50 MiB, then nothing: the server answers 401 at once instead of
    # buffering the body (or waiting the read timeout for it) before looking at the token.
    host, port = server.url.removeprefix("http://").split(":")
    for authorization in ("", "Authorization: Bearer myd_forged\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            began = time.monotonic()
            connection.sendall(
                f"POST {API}/models/fraud/versions HTTP/1.1\r\nHost: {host}\r\n"
                f"{authorization}Content-Type: application/json\r\n"
                f"Content-Length: {50 << 20}\r\n\r\n".encode()
            )
            answer = connection.recv(4096).decode()
            assert answer.startswith("HTTP/1.1 401"), answer
            assert time.monotonic() - began < 5
