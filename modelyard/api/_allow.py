"""A 405 that lists every method its path takes, in `Allow` and in the message.

Starlette answers a method mismatch from the first route whose path matched, so its `Allow` names
that route's methods only (`GET` for a path that also takes `DELETE` through another route). RFC
9110 wants the whole set; this handler gathers it from every route of the app.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route


async def method_not_allowed(request: Request, error: HTTPException) -> Response:
    """FastAPI's own answer for any HTTP error but 405; for 405, the full `Allow` list."""
    if error.status_code != 405:
        return await http_exception_handler(request, error)
    allowed = sorted(allowed_methods(request))
    listed = ", ".join(allowed)
    return JSONResponse(
        {"error": f"{request.method} is not allowed on {request.url.path}; use {listed}",
         "type": "MethodNotAllowed", "details": {"allowed": allowed}},
        status_code=405,
        headers={"Allow": listed},
    )  # fmt: skip


def allowed_methods(request: Request) -> set[str]:
    """The methods of every route whose path matches the request's."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            matched, _ = route.matches({**request.scope, "method": next(iter(route.methods))})
            if matched == Match.FULL:
                methods |= route.methods
    return methods
