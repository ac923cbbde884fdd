"""A 405 that lists every method its path takes, in `Allow` and in the message.

Starlette answers a method mismatch from the first route whose path matched, so its `Allow` names
that route's methods only (`GET` for a path that also takes `DELETE` through another route). RFC
9110 wants the whole set; this handler gathers it from every route of the app.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from modelyard.api._responses import error_response
from modelyard.errors import MethodNotAllowed

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def method_not_allowed(request: Request, error: HTTPException) -> Response:
    """FastAPI's own answer for any HTTP error but 405; for 405, the full `Allow` list."""
    if error.status_code != 405:
        return await http_exception_handler(request, error)
    allowed = sorted(allowed_methods(request))
    return error_response(
        request, MethodNotAllowed(request.method, request.url.path, allowed=allowed)
    )


def allowed_methods(request: Request) -> set[str]:
    """The methods some route takes on the request's path.

    Each method is tried against the app's routes as a whole: FastAPI (0.165 here) keeps an
    included router as one route, so the routes inside it, and their `methods`, are not listed.
    """
    return {
        method
        for method in _METHODS
        for route in request.app.router.routes
        if route.matches({**request.scope, "method": method})[0] == Match.FULL
    }
