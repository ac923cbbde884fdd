"""Cross-site request forgery: every form a page posts carries a token only this site can make.

The browser holds a random `modelyard_csrf` cookie (HttpOnly, SameSite=Strict); each form holds
`HMAC(key, cookie)` in a hidden field. A post counts only when both are present and match, and
when its `Origin` (or `Sec-Fetch-Site`) says it came from this site. Another site can neither
read the cookie nor make the field, and a strict cookie does not travel with its requests at
all. The key is derived from the server secret, so every replica of a registry accepts the forms
of the others. This holds with auth off too: a page on the internet must not be able to promote a
model through a browser that happens to reach a loopback registry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from modelyard.errors import CrossSiteRequest

COOKIE = "modelyard_csrf"
FIELD = "csrf"


class Csrf:
    """Issues and checks form tokens with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def cookie(self, request: Request) -> tuple[str, bool]:
        """The browser's cookie value, and whether it is new (to be set on the response)."""
        value = request.cookies.get(COOKIE, "")
        if len(value) == 43 and value.replace("-", "").replace("_", "").isalnum():
            return value, False
        return secrets.token_urlsafe(32), True

    def token(self, cookie: str) -> str:
        """The hidden field's value for forms shown to the holder of `cookie`."""
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    def set_cookie(self, response: Response, cookie: str, *, secure: bool) -> None:
        """Give the browser its cookie (sent back on same-site requests only)."""
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", secure=secure,
                            path="/")  # fmt: skip

    def check(self, request: Request, field: str | None) -> None:
        """Refuse (403) a post that is cross-site or lacks a valid token."""
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        if site not in (None, "same-origin", "none") or (
            origin is not None and origin != _own_origin(request)
        ):
            raise CrossSiteRequest(
                "refused: the form was posted from another site; use the page this server shows"
            )
        cookie = request.cookies.get(COOKIE)
        if not cookie or not field or not hmac.compare_digest(self.token(cookie), field):
            raise CrossSiteRequest(
                "refused: the form's security token is missing or stale; reload the page and "
                "try again"
            )


def _own_origin(request: Request) -> str:
    url = request.url
    default = {"http": 80, "https": 443}.get(url.scheme)
    port = "" if url.port in (None, default) else f":{url.port}"
    return f"{url.scheme}://{url.hostname}{port}"
