"""The registry's hot routes, answered ahead of FastAPI: register a version, read one, move an
alias and search.

Through FastAPI every request pays for a chain of routers and middleware, dependency solving
and a validation pass: on SQLite, about as long as the registry takes to answer. These four
routes are taken by one plain ASGI middleware instead. It parses the body with orjson, checks it
with the same pydantic models, runs the same registry call in a thread and writes the
record's JSON. FastAPI still declares the routes (`_registry.py`), so the OpenAPI document keeps
describing them, and a request the shortcut cannot take as written (a body that does not parse
or validate, another content type, a query it does not expect) goes on to FastAPI untouched: its
error responses stay FastAPI's.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard._yard import Yard
from modelyard.api import _schemas as body
from modelyard.api._access import Access
from modelyard.api._acting import Caller
from modelyard.api._registry import register, registering, search_readable
from modelyard.api._responses import encode, error_response
from modelyard.errors import ModelyardError
from modelyard.security import Role

Call = Callable[..., BaseModel]
"""(caller, body or None, **path and query parameters) -> the record to send back; the call
checks the caller's role itself, as the FastAPI route does."""


@dataclass(frozen=True, slots=True)
class HotRoute:
    """One route the shortcut answers: `path` is matched whole against the request's path."""

    method: str
    path: re.Pattern[str]
    call: Call
    body: type[BaseModel] | None = None
    query: frozenset[str] = frozenset()
    status_code: int = 200
    headers: frozenset[str] = frozenset()
    """Request headers passed to the call by name (`idempotency-key` as `idempotency_key`)."""


def hot_routes(yard: Yard, access: Access, *, prefix: str) -> list[HotRoute]:
    """The routes worth a shortcut: those a registry client calls for every model it logs,
    deploys or looks up."""

    def create_version(
        caller: Caller, new: body.VersionCreate, *, name: str, idempotency_key: str | None = None
    ) -> BaseModel:
        registry = registering(caller, access, name, new)
        return register(yard, registry, name, new, idempotency_key=idempotency_key)

    def get_version(caller: Caller, _body: None, *, ref: str) -> BaseModel:
        return caller.need_ref(Role.READER, ref).registry.get_version(ref)

    def set_alias(caller: Caller, target: body.AliasTarget, *, name: str, alias: str) -> BaseModel:
        registry = caller.need(access.alias_role(alias), name).registry
        return registry.set_alias(name, alias, target.version, reason=target.reason)

    def search_versions(caller: Caller, search: body.Search) -> BaseModel:
        return search_readable(caller, search)

    def path(pattern: str) -> re.Pattern[str]:
        # The same segments FastAPI matches: {name} is one segment, {alias:path} the rest.
        return re.compile(re.escape(prefix) + pattern)

    return [
        HotRoute("POST", path(r"/models/(?P<name>[^/]+)/versions"), create_version,
                 body=body.VersionCreate, status_code=201,
                 headers=frozenset({"idempotency-key"})),
        HotRoute("GET", path(r"/version"), get_version, query=frozenset({"ref"})),
        HotRoute("PUT", path(r"/models/(?P<name>[^/]+)/aliases/(?P<alias>.+)"), set_alias,
                 body=body.AliasTarget),
        HotRoute("POST", path(r"/versions/search"), search_versions, body=body.Search),
    ]  # fmt: skip


class HotRoutes:
    """ASGI middleware: answers the hot routes itself and passes everything else to `app`.

    It authenticates as the FastAPI routes do, from the same token cache: a cached token costs
    a dict lookup; a miss is looked up in a thread before the body is read."""

    def __init__(self, app: ASGIApp, *, yard: Yard, access: Access, prefix: str) -> None:
        self.app = app
        self.yard = yard
        self.access = access
        self.routes = hot_routes(yard, access, prefix=prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._match(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        route, parameters = found
        loop = asyncio.get_running_loop()
        try:
            credentials = _credentials(scope)
            principal = self.access.cached(**credentials)
            if principal is None:
                authenticate = functools.partial(self.access.authenticate, **credentials)
                principal = await loop.run_in_executor(None, authenticate)
        except ModelyardError as error:
            await error_response(None, error)(scope, receive, send)
            return
        messages: list[Message] = []
        content = await _read_body(receive, messages) if route.body is not None else b""
        arguments = _arguments(route, scope, content, parameters)
        if arguments is None:  # FastAPI answers it, with its own error if it is one
            await self.app(scope, _replay(messages, receive), send)
            return
        record_body, values = arguments
        caller = Caller(principal, self.access)
        call = functools.partial(route.call, caller, record_body, **values)
        try:
            # Registry calls block (SQLite, PostgreSQL), so they run in threads: the event
            # loop's own executor, which hands off directly. AnyIO's `to_thread`, which FastAPI
            # uses, spends longer finding its backend, limiter and cancel scope than reading one
            # version takes.
            record = await loop.run_in_executor(None, call)
        except ModelyardError as error:
            await error_response(None, error)(scope, receive, send)
            return
        content = encode(record)
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(content)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": route.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _match(self, scope: Scope) -> tuple[HotRoute, dict[str, str]] | None:
        if scope["type"] != "http" or scope.get("root_path"):
            return None
        for route in self.routes:
            if route.method == scope["method"]:
                matched = route.path.fullmatch(scope["path"])
                if matched is not None:
                    return route, matched.groupdict()
        return None


def _arguments(
    route: HotRoute, scope: Scope, content: bytes, parameters: dict[str, str]
) -> tuple[BaseModel | None, dict[str, str]] | None:
    """The call's body and keyword arguments, or None where FastAPI should decide."""
    query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    values = dict(query)
    if len(values) != len(query) or values.keys() != route.query:
        return None
    values.update(parameters)
    for name in route.headers:
        header = _header(scope, name.encode())
        if header is not None:
            values[name.replace("-", "_")] = header.decode("latin-1")
    if route.body is None:
        return None, values
    if _header(scope, b"content-type") != b"application/json":
        return None
    try:
        return route.body.model_validate(orjson.loads(content)), values
    except (orjson.JSONDecodeError, ValidationError):
        return None


async def _read_body(receive: Receive, messages: list[Message]) -> bytes:
    """The whole request body; the messages are kept in `messages` to be replayed."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return b""  # a disconnect: FastAPI gets it replayed
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def _credentials(scope: Scope) -> dict[str, str | None]:
    authorization = _header(scope, b"authorization")
    user = _header(scope, b"x-modelyard-user")
    client = scope.get("client")
    return {
        "authorization": authorization.decode("latin-1") if authorization is not None else None,
        "client": client[0] if client else None,
        "proxy_user": user.decode("latin-1") if user is not None else None,
    }
