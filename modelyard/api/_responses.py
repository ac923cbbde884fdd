"""Fast JSON responses for routes that return the registry's pydantic records.

FastAPI validates and re-encodes a returned model against the route's response model; these
records were built from validated rows already, so they are written straight to JSON by
pydantic-core instead (a list of 1,000 versions: about half the time). The return annotation
still describes the response in the OpenAPI document.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from modelyard.errors import ModelyardError, Unauthenticated

P = ParamSpec("P")
R = TypeVar("R")


def encode(value: Any) -> bytes:
    """JSON bytes of a record or a list of records."""
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return b"[" + b",".join(item.model_dump_json().encode() for item in value) + b"]"


def fast_json(status_code: int = 200) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make a route return its record(s) as JSON directly, with `status_code`."""

    def decorate(endpoint: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(endpoint)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            result = endpoint(*args, **kwargs)
            response = Response(encode(result), status_code, media_type="application/json")
            return response  # type: ignore[return-value]

        return run

    return decorate


def error_response(_request: Request | None, error: ModelyardError) -> JSONResponse:
    """The `{"error", "type", "details"}` body of a failed request, with the error's status."""
    details = {
        key: value
        for key, value in vars(error).items()
        if key != "message" and isinstance(value, str | int | float | list)
    }
    body = {"error": error.message, "type": type(error).__name__, "details": details}
    challenge = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthenticated) else None
    return JSONResponse(body, status_code=error.status_code, headers=challenge)
