"""`AuthenticateFirst`: with auth on, a request whose bearer token does not verify is answered
401 before anything reads its body.

`RequestLimits` reads a body (up to the server's limit, for up to the read timeout) before the
app sees the request, and the routes check the token after that. Without this middleware in
front, an anonymous client could make the server buffer 64 MiB, or hold a connection for the
read timeout, as often as it liked. A token that verifies here is cached, so the route's own
check costs a dict lookup.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.api._access import Access
from modelyard.api._responses import error_response
from modelyard.errors import Unauthenticated


class AuthenticateFirst:
    """ASGI middleware, outermost: refuses a request that fails authentication (401) before
    its body is read; `open_paths` (health, the OpenAPI document) need no token, and the paths
    `own_auth` accepts (the web UI's) authenticate themselves."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access: Access,
        open_paths: frozenset[str],
        own_auth: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self.app = app
        self.access = access
        self.open_paths = open_paths
        self.own_auth = own_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.access.required
            and scope["path"] not in self.open_paths
            and not self.own_auth(scope["path"])
        ):
            try:
                await self._authenticate(scope)
            except Unauthenticated as error:
                await error_response(None, error)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> None:
        headers = dict(scope["headers"])
        authorization = _text(headers.get(b"authorization"))
        client = scope["client"][0] if scope.get("client") else None
        proxy_user = _text(headers.get(b"x-modelyard-user"))
        if self.access.cached(authorization, client=client, proxy_user=proxy_user) is None:
            check = functools.partial(
                self.access.authenticate, authorization, client=client, proxy_user=proxy_user
            )
            await asyncio.get_running_loop().run_in_executor(None, check)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
