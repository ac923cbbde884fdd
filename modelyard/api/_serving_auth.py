"""Bearer tokens on `modelyard serve` (with `MODELYARD_AUTH=true`): the reader role on the model
a request names, checked against the same registry the server loads its versions from.

With a local registry (SQLite or PostgreSQL) tokens and grants are read from its database, as
`modelyard server` does; with `MODELYARD_URL` each (token, model) pair is asked of the registry
server once (`GET /api/v1/models/{name}` with the caller's token). Either way an answer is
cached for `auth_cache_seconds`, so a request pays a dict lookup. The health routes, `/metrics`
and `/openapi.json` stay open (probes and Prometheus carry no token).
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from modelyard._tls import client_verify
from modelyard.api._access import CACHE_LIMIT, Access
from modelyard.api._responses import send_error
from modelyard.errors import ModelyardError, RegistryUnavailable, Unauthenticated
from modelyard.registry import Database
from modelyard.security import Principal, Role
from modelyard.settings import Settings

if TYPE_CHECKING:  # httpx is loaded only to ask a registry server (it costs a cold start 0.2 s)
    import httpx

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
Check = Callable[[str | None, str | None, str | None], None]
"""(authorization, client address, model or None for every model) -> None, or raise."""

_MODEL = re.compile(r"^/v2/models/([^/]+)")
_OPEN = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json"})


class ServingAuth:
    """ASGI middleware in front of the inference app: refuses a request without the reader
    role on its model (401 or 403, the registry's error bodies)."""

    def __init__(self, app: App, *, check: TokenCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN:
            await self.app(scope, receive, send)
            return
        matched = _MODEL.match(scope["path"])
        try:
            await self.check(_header(scope, b"authorization"), _client(scope),
                             matched.group(1) if matched else None)  # fmt: skip
        except ModelyardError as error:
            await send_error(send, error)
            return
        await self.app(scope, receive, send)


class TokenCheck:
    """Whether a bearer may read a model (every model: `None`), for any transport: the cached
    answer when there is one, else the full check in a worker thread; raises the refusal."""

    def __init__(self, check: Check, fast: Check | None = None) -> None:
        self.check = check
        self.fast = fast

    async def __call__(
        self, authorization: str | None, client: str | None, model: str | None
    ) -> None:
        arguments = (authorization, client, model)
        if self.fast is None or not _passes(self.fast, arguments):
            call = functools.partial(self.check, *arguments)
            await asyncio.get_running_loop().run_in_executor(None, call)


def serving_auth(app: App, settings: Settings) -> App:
    """`app` behind bearer tokens when `settings.auth` is on; `app` itself otherwise."""
    check = token_check(settings)
    return app if check is None else ServingAuth(app, check=check)


def token_check(settings: Settings) -> TokenCheck | None:
    """The bearer check `settings` ask for (`settings.auth`), against the local registry or
    the registry server of `settings.url`; `None` when auth is off."""
    if not settings.auth:
        return None
    if settings.url:
        import httpx

        client = httpx.Client(base_url=settings.url.rstrip("/") + "/api/v1", timeout=10,
                              verify=client_verify(settings))  # fmt: skip
        remote = RemoteCheck(settings.url, ttl=settings.auth_cache_seconds, client=client)
        return TokenCheck(remote.check, remote.cached)
    local = LocalCheck(settings)
    return TokenCheck(local.check, local.cached)


class LocalCheck:
    """Tokens and grants from the registry database the settings name."""

    def __init__(self, settings: Settings) -> None:
        self._database: Database | None = None
        self._url = settings.database_url
        self.access = Access(settings, self.database, clock=time.monotonic)

    def database(self) -> Database:
        if self._database is None:
            database = Database(self._url)
            database.open()
            self._database = database
        return self._database

    def cached(self, authorization: str | None, client: str | None, model: str | None) -> None:
        principal = self.access.cached(authorization, client=client, proxy_user=None)
        if principal is None:
            raise _Miss
        self._require(principal, model)

    def check(self, authorization: str | None, client: str | None, model: str | None) -> None:
        principal = self.access.authenticate(authorization, client=client, proxy_user=None)
        self._require(principal, model)

    def _require(self, principal: Principal, model: str | None) -> None:
        if model is None:
            self.access.require_somewhere(principal, Role.READER)
        else:
            self.access.require(principal, Role.READER, model)


class RemoteCheck:
    """Asks the registry server whether a token may read a model, and remembers the answer."""

    def __init__(self, url: str, *, ttl: float, client: httpx.Client | None = None) -> None:
        import httpx

        self.client = client or httpx.Client(base_url=url.rstrip("/") + "/api/v1", timeout=10)
        self.ttl = ttl
        self._answers: dict[tuple[str | None, str | None], tuple[ModelyardError | None, float]] = {}

    def cached(self, authorization: str | None, client: str | None, model: str | None) -> None:
        if not authorization:
            raise Unauthenticated("the server requires a token: set MODELYARD_TOKEN")
        answer = self._answers.get((authorization, model))
        if answer is None or time.monotonic() >= answer[1]:
            raise _Miss
        if answer[0] is not None:
            raise _fresh(answer[0])

    def check(self, authorization: str | None, client: str | None, model: str | None) -> None:
        import httpx

        from modelyard._remote import raise_for

        path = f"/models/{model}" if model else "/models"
        try:
            response = self.client.get(path, headers={"Authorization": authorization or ""})
        except httpx.TransportError as error:
            raise RegistryUnavailable(
                f"cannot check the token with the registry: {error}"
            ) from None
        refusal: ModelyardError | None = None
        try:
            raise_for(response)
        except ModelyardError as error:
            refusal = error
        if refusal is None or refusal.status_code in (401, 403, 404):  # answers, not outages
            if len(self._answers) >= CACHE_LIMIT:
                self._answers.clear()
            self._answers[(authorization, model)] = (refusal, time.monotonic() + self.ttl)
        if refusal is not None:
            raise _fresh(refusal)


class _Miss(Exception):
    """The cache cannot answer; the full check runs in a thread."""


def _passes(fast: Check, arguments: tuple[str | None, str | None, str | None]) -> bool:
    try:
        fast(*arguments)
    except _Miss:
        return False
    return True


def _fresh(error: ModelyardError) -> ModelyardError:
    copy = type(error).__new__(type(error))
    ModelyardError.__init__(copy, error.message)
    copy.__dict__.update({k: v for k, v in vars(error).items() if k != "message"})
    copy.status_code = error.status_code
    return copy


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _client(scope: dict[str, Any]) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None
