"""The JSON answers of both servers: registry records, fast, and errors, rendered once.

FastAPI validates and re-encodes a returned model against the route's response model; these
records were built from validated rows already, so they are written straight to JSON by
pydantic-core instead (a list of 1,000 versions: about half the time). The return annotation
still describes the response in the OpenAPI document.

Every `ModelyardError` either server answers goes through `render_error`: the registry API
(`modelyard server`) and the Open Inference Protocol app (`modelyard serve`) alike.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import orjson
from pydantic import BaseModel

from modelyard.errors import MethodNotAllowed, ModelyardError, ServerBusy, Unauthenticated

if TYPE_CHECKING:  # the inference server answers errors without loading any web framework
    from starlette.requests import Request
    from starlette.responses import Response

P = ParamSpec("P")
R = TypeVar("R")


def encode(value: Any) -> bytes:
    """JSON bytes of a record or a list of records."""
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return b"[" + b",".join(item.model_dump_json().encode() for item in value) + b"]"


def fast_json(status_code: int = 200) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make a route return its record(s) as JSON directly, with `status_code`."""

    from starlette.responses import Response  # FastAPI's own Response

    def decorate(endpoint: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(endpoint)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            result = endpoint(*args, **kwargs)
            response = Response(encode(result), status_code, media_type="application/json")
            return response  # type: ignore[return-value]

        return run

    return decorate


def render_error(error: ModelyardError, *, oip: bool = False) -> tuple[int, bytes, dict[str, str]]:
    """The status, JSON body and headers that answer `error`.

    The body is `{"error", "code", "type", "details"}`: `code` is what clients rebuild the error
    from; `type` (the class's name) is kept for clients older than `code`; `details` holds the
    error's plain attributes. The Open Inference Protocol's body (`oip=True`) is `{"error",
    "code"}`: its clients read `error`.
    """
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    if not oip:
        body["type"] = type(error).__name__
        body["details"] = {
            key: value
            for key, value in vars(error).items()
            if key not in ("message", "status_code") and isinstance(value, str | int | float | list)
        }
    headers = {"content-type": "application/json"}
    if isinstance(error, Unauthenticated):
        headers["www-authenticate"] = "Bearer"
    elif isinstance(error, ServerBusy):
        headers["retry-after"] = str(error.retry_after)
    elif isinstance(error, MethodNotAllowed):
        headers["allow"] = ", ".join(error.allowed)
    return error.status_code, orjson.dumps(body), headers


def error_response(_request: Request | None, error: ModelyardError) -> Response:
    """The registry API's answer to `error` (its exception handler; also an ASGI app)."""
    from starlette.responses import Response  # FastAPI's own Response

    status, body, headers = render_error(error)
    return Response(body, status, headers=headers)


async def send_error(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    error: ModelyardError,
    *,
    oip: bool = False,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer `error` on a raw ASGI `send`, with `headers` added (`connection: close`, …)."""
    status, body, rendered = render_error(error, oip=oip)
    fields = {**rendered, "content-length": str(len(body)), **(headers or {})}
    raw = [(name.encode(), value.encode("latin-1")) for name, value in fields.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
