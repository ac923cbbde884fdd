"""Security headers on every UI response: pages, error pages, redirects and static files.

The policy allows scripts from this server only (no inline script, no `on*=` attribute, no
`eval`), so even markup that slipped past escaping could run nothing; no framing (clickjacking
of the action buttons); forms post only here. A route that set its own, stricter
`Content-Security-Policy` (the monitoring report) keeps it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("x-content-type-options", "nosniff"),
)


class SecurityHeaders:
    """ASGI middleware adding `HEADERS` to the responses of the paths `applies` accepts, and
    `Cache-Control: no-store` to those not under `static` (pages hold data a shared
    computer's cache must not keep)."""

    def __init__(self, app: ASGIApp, *, applies: Callable[[str], bool], static: str) -> None:
        self.app = app
        self.applies = applies
        self.static = static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        cached = scope["path"].startswith(self.static + "/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    headers.setdefault(name, value)
                if not cached:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, sending)
