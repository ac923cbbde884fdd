"""Errors over HTTP: each class has a stable `code`; the servers put it on the wire and the
client raises the class registered under it, never one looked up by its Python name."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

import modelyard
import modelyard.errors as errors
from modelyard import Settings, Yard
from modelyard._remote import HttpRegistry, raise_for
from modelyard.api import create_inference_app
from modelyard.api._responses import render_error
from modelyard.errors import (
    CODES,
    AliasNotFound,
    ConfigurationError,
    GateFailed,
    InvalidFilter,
    InvalidReference,
    InvalidTransition,
    MethodNotAllowed,
    ModelNotFound,
    ModelyardError,
    NotFound,
    PermissionDenied,
    RunNotFound,
    SelfApproval,
    ServerBusy,
    Unauthenticated,
    VersionInUse,
    VersionNotFound,
    class_for,
)
from modelyard.registry import Database, Principals
from modelyard.registry._references import FORMS
from tests.servers import running_server

API = "/api/v1"


def all_errors() -> list[type[ModelyardError]]:
    return [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, ModelyardError)
    ]


def test_every_error_has_its_own_unique_code_and_a_status() -> None:
    found = all_errors()
    for error in found:
        assert "code" in error.__dict__, f"{error.__name__} declares no code"
        assert CODES[error.code] is error and class_for(error.code) is error
        assert isinstance(error.status_code, int) and 400 <= error.status_code < 600
    assert len({error.code for error in found}) == len(found) == len(CODES)


def test_every_error_is_exported_from_the_package() -> None:
    for error in all_errors():
        assert getattr(modelyard, error.__name__) is error
        assert error.__name__ in modelyard.__all__


def test_a_taken_or_malformed_code_fails_where_the_class_is_defined() -> None:
    before = dict(CODES)
    with pytest.raises(TypeError, match="'version_in_use' of .*Again is VersionInUse's"):

        class Again(ModelyardError):
            code = "version_in_use"

    with pytest.raises(TypeError, match="'Not Snake' is not snake_case"):

        class Shouting(ModelyardError):
            code = "Not Snake"

    assert dict(CODES) == before


def test_a_subclass_without_a_code_travels_as_its_base() -> None:
    class ShelfEmpty(NotFound):  # a class of someone else's, declaring no code
        pass

    status, body, _ = render_error(ShelfEmpty("the shelf is empty"))
    assert b'"code":"not_found"' in body and ShelfEmpty not in CODES.values()
    with pytest.raises(NotFound, match="^the shelf is empty$") as caught:
        raise_for(httpx.Response(status, content=body))
    assert type(caught.value) is NotFound and caught.value.status_code == 404


# Renaming safety: what the client raises depends on `code` alone.


def test_the_client_resolves_by_code_not_by_class_name() -> None:
    renamed = {"error": "in use", "code": "version_in_use", "type": "AliasedVersion",
               "details": {"aliases": ["production"]}}  # fmt: skip
    with pytest.raises(VersionInUse, match="^in use$") as caught:
        raise_for(httpx.Response(409, json=renamed))
    assert caught.value.aliases == ["production"]
    named_only = {"error": "in use", "type": "VersionInUse", "details": {"aliases": ["x"]}}
    with pytest.raises(ModelyardError) as plain:
        raise_for(httpx.Response(409, json=named_only))
    assert type(plain.value) is ModelyardError and not hasattr(plain.value, "aliases")


def test_an_unknown_code_becomes_a_plain_error_with_the_servers_message() -> None:
    newer = {"error": "the moon is full", "code": "moon_full", "type": "MoonFull"}
    with pytest.raises(ModelyardError, match="^the moon is full$") as caught:
        raise_for(httpx.Response(418, json=newer))
    assert type(caught.value) is ModelyardError and caught.value.status_code == 418


@pytest.mark.parametrize("body", [b"<html>bad gateway</html>", b"[1]", b'{"code": "x"}'])
def test_a_body_that_is_no_error_body_becomes_a_plain_error(body: bytes) -> None:
    with pytest.raises(ModelyardError, match="^HTTP 502: ") as caught:
        raise_for(httpx.Response(502, content=body))
    assert type(caught.value) is ModelyardError and caught.value.status_code == 502


def test_details_cannot_set_private_attributes() -> None:
    details = {"name": "fraud", "__class__": "x", "_secret": 1, "message": "other"}
    body = {"error": "gone", "code": "model_not_found", "details": details}
    with pytest.raises(ModelNotFound) as caught:
        raise_for(httpx.Response(404, json=body))
    assert caught.value.name == "fraud" and caught.value.message == "gone"
    assert not hasattr(caught.value, "_secret")


def test_one_renderer_answers_for_both_servers() -> None:
    busy = ServerBusy("fraud", waiting=8, retry_after=2)
    status, body, headers = render_error(busy, oip=True)
    assert (status, headers["retry-after"]) == (429, "2")
    assert body.startswith(b'{"error":"fraud has 8 requests waiting') and body.endswith(
        b'"code":"server_busy"}'
    )
    _, full, challenge = render_error(Unauthenticated("no token"))
    assert b'"type":"Unauthenticated","details":{}' in full
    assert challenge["www-authenticate"] == "Bearer"
    _, _, allow = render_error(MethodNotAllowed("PUT", "/v2", allowed=["GET", "POST"]))
    assert allow["allow"] == "GET, POST"


# Round trips through a real `modelyard server`: raised there, raised here, same class and words.


@dataclass
class Server:
    url: str
    home: Path
    tokens: dict[str, str]
    yards: dict[str, Yard] = field(default_factory=dict)

    def registry(self, who: str) -> HttpRegistry:
        """`who`'s client (their token; an unknown user's is made up), closed after the module."""
        if who not in self.yards:
            token = SecretStr(self.tokens.get(who, "my-made-up-token"))
            settings = Settings(home=self.home / who, user=who, token=token)
            self.yards[who] = Yard(settings, url=self.url)
        registry = self.yards[who].registry
        assert isinstance(registry, HttpRegistry)
        return registry


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("wire")
    env = {"MODELYARD_AUTH": "true", "MODELYARD_AUTH_CACHE_SECONDS": "0"}
    with running_server(home, env=env) as url:
        database = Database(f"sqlite:///{home / 'server-home' / 'registry.db'}")
        database.open()
        principals = Principals(database, actor="test")
        principals.grant("ana", "admin")
        principals.grant("rita", "reader")
        tokens = {user: principals.create_token(user=user).secret for user in ("ana", "rita")}
        database.close()
        state = Server(url, home, tokens)
        ana = state.registry("ana")
        ana.create_version("fraud")
        ana.set_alias("fraud", "production", "fraud:1")
        ana.create_version("fraud")
        ana.transition("fraud:2", "archived")
        ana.add_gate("fraud", "approval", to_state="validated")
        yield state
        for yard in state.yards.values():
            yard.close()


Call = Callable[[Server], object]
CASES: list[tuple[str, Call, ModelyardError]] = [
    ("model", lambda s: s.registry("ana").get_model("nope"), ModelNotFound("nope")),
    ("version", lambda s: s.registry("ana").get_version("fraud:9"), VersionNotFound("fraud:9")),
    ("alias", lambda s: s.registry("ana").delete_alias("fraud", "champion"),
     AliasNotFound("fraud", "champion")),
    ("run", lambda s: s.registry("ana").get_run("nope"), RunNotFound("nope")),
    ("reference", lambda s: s.registry("ana").get_version("fraud:x"),
     InvalidReference("fraud:x", expected=FORMS)),
    ("in use", lambda s: s.registry("ana").delete_version("fraud:1"),
     VersionInUse("fraud:1", aliases=["production"])),
    ("transition", lambda s: s.registry("ana").transition("fraud:2", "validated"),
     InvalidTransition("fraud:2", current="archived", wanted="validated", allowed=[])),
    ("gate", lambda s: s.registry("ana").transition("fraud:1", "validated"),
     GateFailed("fraud:1", wanted="validated",
                failures=["needs 1 approval(s) by someone other than the creator, has 0"])),
    ("self approval", lambda s: s.registry("ana").approve("fraud:1"),
     SelfApproval("ana", ref="fraud:1")),
    ("filter", lambda s: s.registry("ana").search_versions("name ="),
     InvalidFilter("invalid filter at column 7: expected a value after '=', found the end\n"
                   "  name =\n        ^")),
    ("validation", lambda s: s.registry("ana").create_version("fraud", metrics={"auc": "high"}),
     ConfigurationError("invalid request: body.metrics.auc: Input should be a valid number, "
                        "unable to parse string as a number")),
    ("role", lambda s: s.registry("rita").create_version("fraud"),
     PermissionDenied("rita", role="editor", model="fraud")),
    ("token", lambda s: s.registry("mallory").get_model("fraud"),
     Unauthenticated("the token was refused: it is not a modelyard API token (myd_…) and "
                     "this server accepts no OIDC tokens")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "expected"), CASES, ids=[case[0] for case in CASES])
def test_an_error_raised_by_the_server_is_raised_by_the_client(
    server: Server, case: str, call: Call, expected: ModelyardError
) -> None:
    with pytest.raises(ModelyardError) as caught:
        call(server)
    got = caught.value
    assert type(got) is type(expected), case
    assert (got.message, got.status_code) == (expected.message, expected.status_code)
    for key, value in vars(expected).items():  # the class's own arguments come back too
        assert getattr(got, key) == value, key


def test_the_server_puts_the_code_on_the_wire(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.tokens['ana']}"}
    with httpx.Client(base_url=server.url + API, headers=headers) as client:
        missing = client.get("/version", params={"ref": "fraud:9"})
        assert missing.json()["code"] == VersionNotFound.code == "version_not_found"
        refused = client.put("/version", params={"ref": "fraud:1"})
        assert (refused.status_code, refused.json()["code"]) == (405, "method_not_allowed")
        with pytest.raises(MethodNotAllowed) as caught:
            raise_for(refused)
        assert caught.value.allowed == refused.headers["allow"].split(", ")


# The inference server renders through the same function: the OIP body plus `code`.


def test_the_inference_server_answers_with_the_code(tmp_path: Path) -> None:
    yard = Yard(Settings(home=tmp_path))
    app = create_inference_app(yard.settings, [], yard=yard)

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            return [await client.post("/v2/health/live"), await client.get("/v2/nowhere")]

    try:
        not_allowed, missing = asyncio.run(ask())
    finally:
        yard.close()
    assert not_allowed.json() == {"error": "POST is not allowed on /v2/health/live; use GET",
                                  "code": "method_not_allowed"}  # fmt: skip
    assert not_allowed.headers["allow"] == "GET"
    with pytest.raises(NotFound, match="no route /v2/nowhere"):
        raise_for(missing)
