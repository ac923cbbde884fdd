"""OIDC/JWT bearer tokens on a real server, verified against a real JWKS served over HTTP:
claims map to a user and groups, grants to a group apply to its members, and forged, expired
or misaddressed tokens are refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import jwt.algorithms
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from modelyard.registry import Database, Principals
from tests.servers import running_server

ISSUER = "https://idp.test"
AUDIENCE = "modelyard"
KID = "key-1"
FETCHES: list[str] = []
"""Paths the JWKS server was asked for."""


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    document = json.dumps({"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            FETCHES.append(self.path)
            body = document.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, jwks_url: str) -> Iterator[str]:
    home = tmp_path_factory.mktemp("oidc")
    env = {"MODELYARD_AUTH": "true", "MODELYARD_OIDC_JWKS_URL": jwks_url,
           "MODELYARD_OIDC_ISSUER": ISSUER, "MODELYARD_OIDC_AUDIENCE": AUDIENCE,
           "MODELYARD_OIDC_USER_CLAIM": "preferred_username"}  # fmt: skip
    with running_server(home, env=env) as url:
        database = Database(f"sqlite:///{home / 'server-home' / 'registry.db'}")
        database.open()
        principals = Principals(database, actor="root")
        principals.grant("olga", "reader")
        principals.grant("ml-admins", "admin", group=True)
        principals.grant("fraud-team", "editor", models="fraud-*", group=True)
        database.close()
        yield url + "/api/v1"


def mint(key: rsa.RSAPrivateKey, *, kid: str = KID, algorithm: str = "RS256",
         **claims: Any) -> str:  # fmt: skip
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def _get(url: str, token: str, method: str = "GET", path: str = "/models") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, url + path, headers=headers, json={}, timeout=30)


def test_a_user_claim_maps_to_grants(server: str, signing_key: rsa.RSAPrivateKey) -> None:
    token = mint(signing_key, sub="u-1", preferred_username="olga")
    assert _get(server, token).status_code == 200
    refused = _get(server, token, "POST", "/models/fraud-a/versions")
    assert refused.status_code == 403 and refused.json()["details"]["principal"] == "olga"


def test_group_grants_apply_to_members(server: str, signing_key: rsa.RSAPrivateKey) -> None:
    member = mint(signing_key, preferred_username="fay", groups=["fraud-team", "other"])
    created = _get(server, member, "POST", "/models/fraud-a/versions")
    assert created.status_code == 201 and created.json()["created_by"] == "fay"
    assert _get(server, member, "POST", "/models/churn/versions").status_code == 403
    admin = mint(signing_key, preferred_username="greg", groups=["ml-admins"])
    assert _get(server, admin, "DELETE", "/models/fraud-a").status_code == 204
    events = _get(server, admin, path="/audit?target=fraud-a").json()
    actors = {e["action"]: e["actor"] for e in events}
    assert actors == {"model.create": "fay", "version.create": "fay", "model.delete": "greg"}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.test"}, "issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"preferred_username": None}, "preferred_username"),
    ],
)
def test_misaddressed_or_expired_tokens_are_refused(
    server: str, signing_key: rsa.RSAPrivateKey, change: dict[str, Any], why: str
) -> None:
    claims = {"preferred_username": "greg", "groups": ["ml-admins"], **change}
    claims = {key: value for key, value in claims.items() if value is not None}
    refused = _get(server, mint(signing_key, **claims))
    assert refused.status_code == 401, refused.text
    assert refused.json()["type"] == "Unauthenticated" and why in refused.json()["error"].lower()


def test_forged_tokens_are_refused(server: str) -> None:
    claims = {"preferred_username": "greg", "groups": ["ml-admins"]}
    other_key = mint(_key(), **claims)  # right kid, wrong key
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300,
                           **claims}, None, algorithm="none", headers={"kid": KID})  # fmt: skip
    for token in [other_key, unsigned, "not-a-jwt", mint(_key(), kid="unknown", **claims)]:
        refused = _get(server, token, "DELETE", "/models/anything")
        assert refused.status_code == 401, token
        assert refused.json()["type"] == "Unauthenticated"


def test_an_hmac_token_signed_with_the_public_key_is_refused(
    server: str, signing_key: rsa.RSAPrivateKey
) -> None:
    from cryptography.hazmat.primitives import serialization

    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "preferred_username": "greg"}
    header = {"alg": "HS256", "kid": KID, "typ": "JWT"}
    token = _hs256(header, payload, public_pem)
    assert _get(server, token).status_code == 401


def _hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token made by hand (PyJWT itself refuses a PEM key as an HMAC secret)."""
    import base64
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = part(json.dumps(header).encode()) + "." + part(json.dumps(payload).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + part(signature)


def test_made_up_key_ids_do_not_hammer_the_identity_provider(server: str) -> None:
    claims = {"preferred_username": "greg", "groups": ["ml-admins"]}
    _get(server, mint(_key(), kid="first-unknown", **claims))
    before = len(FETCHES)
    for n in range(5):
        refused = _get(server, mint(_key(), kid=f"made-up-{n}", **claims))
        assert refused.status_code == 401 and "no signing key" in refused.json()["error"]
    assert len(FETCHES) == before  # within REFRESH_SECONDS of the last fetch: none
