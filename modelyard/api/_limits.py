"""`RequestLimits`: ASGI middleware that bounds how large a request body may be and how long a
client may take to send it.

uvicorn bounds neither: a client could send a 400 MiB registration (the server held it all), or
send its headers and then trickle the body a byte at a time, holding a connection and a task for
as long as it likes. The middleware reads the body before the app sees the request:

- a `Content-Length` over the limit is answered 413 at once, without reading anything;
- a body without one (chunked) is counted as it arrives and answered 413 once past the limit;
- a body not complete within `read_timeout` seconds of the request's start is answered 408 and
  the connection closed.

The app then gets the body replayed as it arrived (one message in the common case, so nothing
is copied). Some routes have limits of their own (blob uploads), named in `body_limits`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.api._responses import send_error
from modelyard.errors import ModelyardError, PayloadTooLarge, RequestTimeout


class RequestLimits:
    """ASGI middleware: at most `max_body_bytes` per request body (`body_limits`: other limits
    for `(method, path prefix)`), sent within `read_timeout` seconds.

    >>> app = RequestLimits(app, max_body_bytes=64 << 20, read_timeout=30.0)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        read_timeout: float,
        body_limits: Sequence[tuple[str, str, int]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.body_limits = tuple(body_limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        try:
            _check_length(scope, limit)
            async with asyncio.timeout(self.read_timeout):
                messages = await _read(receive, limit)
        except PayloadTooLarge as error:
            await _refuse(send, error)
            return
        except TimeoutError:
            await _refuse(send, RequestTimeout(self.read_timeout))
            return
        pending = list(messages)

        async def replay() -> Message:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)

    def _limit(self, scope: Scope) -> int:
        for method, prefix, limit in self.body_limits:
            if scope["method"] == method and scope["path"].startswith(prefix):
                return limit
        return self.max_body_bytes


def _check_length(scope: Scope, limit: int) -> None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return  # the server refuses a malformed length itself
            if length > limit:
                raise PayloadTooLarge(limit)


async def _read(receive: Receive, limit: int) -> list[Message]:
    """The request's body messages (a disconnect ends them early), counted against `limit`."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            raise PayloadTooLarge(limit)
        if not message.get("more_body", False):
            return _joined(messages)


def _joined(messages: list[Message]) -> list[Message]:
    if len(messages) == 1:
        return messages
    body = b"".join(message.get("body", b"") for message in messages)
    return [{"type": "http.request", "body": body, "more_body": False}]


async def _refuse(send: Send, error: ModelyardError) -> None:
    # The rest of the body is never read: end the connection.
    await send_error(send, error, headers={"connection": "close"})
