"""`Pages`: what every page handler needs (the yard, the gatekeeper, templates, CSRF), and the
`page` decorator that turns a `ModelyardError` into an HTML page saying what went wrong."""

from __future__ import annotations

import functools
import inspect
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from modelyard._yard import Yard
from modelyard.errors import ModelyardError, PayloadTooLarge, Unauthenticated
from modelyard.security import derive_key, load_secret
from modelyard.settings import Settings
from modelyard.ui._csrf import FIELD, Csrf
from modelyard.ui._render import Renderer
from modelyard.ui._viewer import Gatekeeper, Viewer

SESSION_COOKIE = "modelyard_session"
"""Holds the API token a user signed in with (HttpOnly, SameSite=Strict)."""

MAX_FORM_BYTES = 64 << 10
"""The largest form a page accepts (a comment, a filter, a token)."""

F = TypeVar("F", bound=Callable[..., Any])


class Pages:
    """The UI's composition root: built once per server by `mount_ui`."""

    def __init__(
        self, *, yard: Yard, gatekeeper: Gatekeeper, settings: Settings, static_url: str
    ) -> None:
        self.yard = yard
        self.gatekeeper = gatekeeper
        self.settings = settings
        self.renderer = Renderer(static_url=static_url)
        self._csrf: Csrf | None = None  # keyed from the server secret, read on first use

    @property
    def csrf(self) -> Csrf:
        """The form-token checker (the secret is read from the home on first use)."""
        if self._csrf is None:
            configured = self.settings.secret_key
            secret = load_secret(
                configured=configured.get_secret_value() if configured else None,
                home=self.settings.home,
            )
            self._csrf = Csrf(derive_key(secret, "ui-forms"))
        return self._csrf

    # who ------------------------------------------------------------------------------------

    def viewer(self, request: Request) -> Viewer:
        """The request's viewer (a FastAPI dependency); not signed in: 303 to the login page."""
        token = request.cookies.get(SESSION_COOKIE)
        authorization = request.headers.get("authorization") or (
            f"Bearer {token}" if token else None
        )
        try:
            principal = self.gatekeeper.authenticate(
                authorization,
                client=request.client.host if request.client else None,
                proxy_user=request.headers.get("x-modelyard-user"),
            )
        except Unauthenticated:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            # No reason in the link: /login finds it from the cookie itself.
            query = urllib.parse.urlencode({"next": target})
            raise HTTPException(303, headers={"location": f"/login?{query}"}) from None
        return Viewer(principal, self.gatekeeper)

    # answers --------------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        *,
        viewer: Viewer | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """`template` with `context`, the viewer, a form token and the flash message."""
        cookie, new = self.csrf.cookie(request)
        response = self.renderer.page(
            request,
            template,
            {
                "viewer": viewer,
                "auth": self.gatekeeper.required,
                "csrf_field": FIELD,
                "csrf_token": self.csrf.token(cookie),
                "flash": request.query_params.get("done", ""),
                **context,
            },
            status_code=status_code,
        )
        if new:
            self.csrf.set_cookie(response, cookie, secure=request.url.scheme == "https")
        return response

    def error(self, request: Request, error: ModelyardError, viewer: Viewer | None) -> Response:
        """An HTML page for `error`, with its status."""
        return self.render(request, "error.html", viewer=viewer, error=error,
                           status_code=error.status_code)  # fmt: skip

    async def form(self, request: Request) -> dict[str, str]:
        """A posted form's fields (last value wins), after the CSRF check; 413 over 64 KiB."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise PayloadTooLarge(MAX_FORM_BYTES, what="the form")
        fields = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                             keep_blank_values=True))  # fmt: skip
        self.csrf.check(request, fields.get(FIELD))
        return fields

    @staticmethod
    def done(to: str, message: str) -> RedirectResponse:
        """After a successful action: back to `to` (a path on this site), saying `message`."""
        separator = "&" if "?" in to else "?"
        return RedirectResponse(
            f"{to}{separator}{urllib.parse.urlencode({'done': message})}", status_code=303
        )

    def page(self, endpoint: F) -> F:
        """Wrap a page handler (sync or async, taking `request` and `viewer` by keyword) so
        that a `ModelyardError` it raises is answered as an HTML page with its status."""
        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await endpoint(*args, **kwargs)
                except ModelyardError as error:
                    return self.error(kwargs["request"], error, kwargs.get("viewer"))

            return cast(F, run_async)

        @functools.wraps(endpoint)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return endpoint(*args, **kwargs)
            except ModelyardError as error:
                return self.error(kwargs["request"], error, kwargs.get("viewer"))

        return cast(F, run)

    async def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking registry call off the event loop."""
        return await run_in_threadpool(function, *args, **kwargs)


def query(**params: Any) -> str:
    """A query string of the params that are set (`?a=1&b=x`), or ``."""
    kept: Mapping[str, Any] = {k: v for k, v in params.items() if v not in (None, "")}
    return f"?{urllib.parse.urlencode(kept)}" if kept else ""
