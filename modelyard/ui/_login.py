"""Signing in to the UI with an API token (`/login`), and signing out.

A browser holds the token in the `modelyard_session` cookie (HttpOnly, SameSite=Strict), so
scripts on the page cannot read it and other sites' requests do not carry it. The sign-in form
needs the CSRF field too: otherwise another site could sign a browser in as the attacker
(login CSRF) and collect what its user then registers.
"""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Query
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelyard.errors import Unauthenticated
from modelyard.ui._pages import SESSION_COOKIE, Pages
from modelyard.ui._viewer import Viewer


def add_routes(router: APIRouter, pages: Pages) -> None:
    """Add `GET /login`, `POST /ui/login` and `POST /ui/logout` to `router`."""

    @router.get("/login")
    @pages.page
    def login(request: Request, next_: str = Query("/", alias="next")) -> Response:
        """The sign-in form (or, with auth off, a note that there is nothing to sign in to)."""
        viewer, why = session(request)
        return pages.render(request, "login.html", viewer=viewer, next=safe_next(next_),
                            why=why, refused="")  # fmt: skip

    def session(request: Request) -> tuple[Viewer | None, str]:
        # Why a session was refused comes from checking its cookie again (cached), never from
        # the query string: a link anyone can write must not put words on this page.
        try:
            return pages.viewer(request), ""
        except HTTPException:
            token = request.cookies.get(SESSION_COOKIE)
            if not token:
                return None, ""
            try:
                pages.gatekeeper.authenticate(f"Bearer {token}", client=None, proxy_user=None)
            except Unauthenticated as error:
                return None, f"Your session ended: {error.message}"
            return None, ""

    @router.post("/ui/login")
    @pages.page
    async def sign_in(request: Request) -> Response:
        """Check the token and keep it in the session cookie; back to where the user was."""
        fields = await pages.form(request)
        target = safe_next(fields.get("next", "/"))
        token = fields.get("token", "").strip()
        try:
            if not pages.gatekeeper.required:
                raise Unauthenticated("this server has auth off: there is nothing to sign in to")
            await pages.call(
                pages.gatekeeper.authenticate,
                f"Bearer {token}" if token else None,
                client=request.client.host if request.client else None,
                proxy_user=None,  # the form signs in with a token, never as a proxy's user
            )
        except Unauthenticated as error:
            return pages.render(request, "login.html", viewer=None, next=target, why="",
                                refused=error.message, status_code=401)  # fmt: skip
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")  # fmt: skip
        return response

    @router.post("/ui/logout")
    @pages.page
    async def sign_out(request: Request) -> Response:
        """Forget the session cookie (the token itself stays valid: revoke it to end it)."""
        await pages.form(request)
        response = pages.done("/login" if pages.gatekeeper.required else "/", "Signed out")
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict",
                               secure=request.url.scheme == "https", path="/")  # fmt: skip
        return response


def safe_next(target: str) -> str:
    """`target` when it is a path on this site, else `/`: never an open redirect to
    `//evil.example`, `https://…` or `/\\evil.example` (browsers read `\\` as `/`)."""
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(char) < 32 or ord(char) == 127 for char in target)
    ):
        return "/"
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target
