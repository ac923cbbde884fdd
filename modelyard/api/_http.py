"""A lean HTTP/1.1 connection for ASGI apps: httptools parses, this module does the rest.

Small requests are many, and uvicorn's share of each was large, so the inference server runs
on this protocol instead (bench/serving_layers.py: a constant answer at 2.2x uvicorn's rate,
on a par with granian's RSGI, with the ASGI interface kept). It keeps what the server needs:

- keep-alive and pipelining (requests on one connection answered in order, one at a time;
  reading pauses while `MAX_PIPELINED` wait);
- a request is read whole before the app is called: a `Content-Length` over the limit is
  answered 413 at once, a chunked body is counted as it arrives; headers not complete within
  `read_timeout` of the connection (or of the previous answer) close the connection, a body
  not complete in that time of its headers gets 408; an idle kept-alive connection is closed
  after `keep_alive` seconds;
- one access-log line per answered request (`modelyard.access`, the format of `AccessLog`);
- a graceful close (`shutdown`): the requests already read are answered, then the connection
  closes.

The app gets the body in one `http.request` message; a second `receive()` waits for the
client to leave (`http.disconnect`). Answers are sent with `Content-Length` (or chunked when the
app streams), and `Date`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import httptools

from modelyard.api._responses import render_error
from modelyard.api._server_log import printable_path
from modelyard.errors import ModelyardError, PayloadTooLarge, RequestTimeout

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

MAX_PIPELINED = 16
"""Complete requests a connection may have waiting before reading pauses."""

SHUTDOWN_GRACE = 1.0
"""Seconds a stopping server waits for the request of a connection that has sent none yet."""

MAX_HEADER_BYTES = 64 * 1024
"""The most bytes of request line and headers one request may have (431 past it)."""

access = logging.getLogger("modelyard.access")

_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}
_ASGI = {"version": "3.0", "spec_version": "2.3"}


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may take: body bytes, seconds to send headers or body, seconds idle."""

    max_body_bytes: int
    read_timeout: float = 30.0
    keep_alive: float = 5.0


@dataclass(slots=True)
class Shared:
    """What every connection of one server shares: the app, the limits, the open connections
    (for a graceful stop) and whether to log each request."""

    app: App
    limits: Limits
    access_log: bool = False
    scheme: str = "http"
    connections: set[Connection] = field(default_factory=set)


@dataclass(slots=True)
class _Request:
    method: str
    url: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    http_version: str
    refusal: ModelyardError | None = None


class _Dates:
    """The `Date` header, formatted once a second."""

    second = -1
    value = b""

    @classmethod
    def header(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second, cls.value = now, formatdate(now, usegmt=True).encode()
        return cls.value


class Connection(asyncio.Protocol):
    """One client connection: parses requests and answers them through the app, in order."""

    transport: asyncio.Transport

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.waiting: deque[_Request] = deque()
        self.busy = False  # an answer is being made
        self.closing = False  # the server stops: close once what was read is answered
        self.paused = False
        self.gone: asyncio.Future[None] = self.loop.create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._size = 0
        self._refusal: ModelyardError | None = None
        self._in_body = False
        self._reading = False  # a request has begun and is not complete
        self.answered = 0
        # Deadlines (the loop's clock) checked by the server's ticker (`expire`): three timers
        # armed and cancelled per request cost more than the rest of the HTTP layer's work.
        self.header_deadline: float | None = None
        self.body_deadline: float | None = None
        self.idle_deadline: float | None = None

    # The transport's side.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        self.shared.connections.add(self)
        self.header_deadline = self.loop.time() + self.shared.limits.read_timeout

    def data_received(self, data: bytes) -> None:
        self.idle_deadline = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # answered as plain HTTP, then closed
            self._fail(400, "protocol upgrades are not served here")
        except httptools.HttpParserError:  # also what a callback raised (`_HeadersTooLarge`)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._fail(431, "request headers too large")
            else:
                self._fail(400, "malformed HTTP request")

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.connections.discard(self)
        if not self.gone.done():
            self.gone.set_result(None)
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def shutdown(self) -> None:
        """Answer what has been read, then close; close now when idle between requests. A
        connection that has not sent its first request yet, or is sending one, gets
        `SHUTDOWN_GRACE` seconds for it: its client is most likely sending it right now."""
        self.closing = True
        if self.busy or self.waiting:
            return
        if self.answered == 0 or self._reading:
            grace = self.loop.time() + SHUTDOWN_GRACE
            self.header_deadline = min(self.header_deadline or grace, grace)
            return
        self.transport.close()

    # The parser's callbacks.

    def on_message_begin(self) -> None:
        self._reading = True
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = []
        self._size = 0
        self._refusal = None

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._count(len(name) + len(value))

    def on_headers_complete(self) -> None:
        self.header_deadline = None
        limit = self.shared.limits.max_body_bytes
        for name, value in self._headers:
            if name == b"content-length" and value.strip().isdigit() and int(value) > limit:
                self._refusal = PayloadTooLarge(limit)
            elif name == b"expect" and value.lower() == b"100-continue" and not self._refusal:
                if not self.busy and not self.waiting:
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self._refusal is not None:  # answered at once; the body is never read
            self._refuse()
            return
        self._in_body = True
        self.body_deadline = self.loop.time() + self.shared.limits.read_timeout

    def on_body(self, body: bytes) -> None:
        if self._refusal is not None:
            return
        self._size += len(body)
        if self._size > self.shared.limits.max_body_bytes:
            self._refusal = PayloadTooLarge(self.shared.limits.max_body_bytes)
            self._refuse()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._reading = False
        self._in_body = False
        self.body_deadline = None
        if self._refusal is None:
            self._enqueue(keep_alive=self.parser.should_keep_alive())

    # Answering, in order.

    def _refuse(self) -> None:
        self._reading = False
        self._body = []
        self._in_body = False
        self.body_deadline = None
        self._enqueue(keep_alive=False)
        self.transport.pause_reading()  # nothing after this request will be read

    def _enqueue(self, *, keep_alive: bool) -> None:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        version = self.parser.get_http_version()
        request = _Request(self.parser.get_method().decode("ascii"), self._url, self._headers,
                           body, keep_alive, version, self._refusal)  # fmt: skip
        self.waiting.append(request)
        if len(self.waiting) >= MAX_PIPELINED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    def _next(self) -> None:
        request = self.waiting.popleft()
        self.busy = True
        self.loop.create_task(self._answer(request))

    async def _answer(self, request: _Request) -> None:
        started = time.perf_counter()
        exchange = _Exchange(self, request)
        try:
            if request.refusal is not None:
                await exchange.error(request.refusal)
            else:
                await self.shared.app(self._scope(request), exchange.receive, exchange.send)
        except Exception:
            logging.getLogger("modelyard.serving").exception(
                "unexpected error answering %s %s", request.method, _shown(request.url)
            )
            if exchange.status is None:
                await exchange.send_plain(500, b"Internal Server Error")
        if exchange.status is None:
            await exchange.send_plain(500, b"Internal Server Error")  # the app said nothing
        if not exchange.complete:
            exchange.keep_alive = False  # the answer was broken off: say so by closing
        if self.shared.access_log:
            self._log(request, exchange.status, started)
        self._done(keep_alive=exchange.keep_alive and request.keep_alive)

    def _done(self, *, keep_alive: bool) -> None:
        self.busy = False
        self.answered += 1
        transport = self.transport
        if transport.is_closing():
            return
        if not keep_alive or (self.closing and not self.waiting):
            transport.close()
            return
        if self.waiting:
            self._next()
            return
        if self.paused:
            self.paused = False
            transport.resume_reading()
        limits, now = self.shared.limits, self.loop.time()
        self.idle_deadline = now + limits.keep_alive
        if self.header_deadline is None and not self._in_body:
            self.header_deadline = now + limits.read_timeout

    def _scope(self, request: _Request) -> dict[str, Any]:
        url = request.url
        raw, _, query = url.partition(b"?")
        if not raw.startswith(b"/"):  # absolute-form (`http://host/path`): keep its path
            parsed = httptools.parse_url(url)
            raw, query = parsed.path or b"/", parsed.query or b""
        path = raw.decode("latin-1")
        return {
            "type": "http",
            "asgi": _ASGI,
            "http_version": request.http_version,
            "method": request.method,
            "scheme": self.shared.scheme,
            "path": unquote(path) if "%" in path else path,
            "raw_path": raw,
            "query_string": query,
            "root_path": "",
            "headers": request.headers,
            "client": self.client,
            "server": self.server,
        }

    def _log(self, request: _Request, status: int | None, started: float) -> None:
        if not access.isEnabledFor(logging.INFO):
            return
        milliseconds = (time.perf_counter() - started) * 1000
        client = self.client[0] if self.client else "-"
        arguments = (client, request.method, _shown(request.url),
                     "-" if status is None else status, milliseconds)  # fmt: skip
        # `handle(makeRecord(...))` is `info(...)` without looking up the caller's file and
        # line in the stack, which no access line shows (a fifth of the line's cost).
        access.handle(access.makeRecord(access.name, logging.INFO, "(access)", 0,
                                        "%s %s %s %s %.1f ms", arguments, None))  # fmt: skip

    # What goes wrong.

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _HeadersTooLarge

    def expire(self, now: float) -> None:
        """Act on the deadlines passed by `now` (the server's ticker calls this)."""
        if self.idle_deadline is not None and now >= self.idle_deadline:
            self._idle()
        if self.header_deadline is not None and now >= self.header_deadline:
            self._slow_headers()
        if self.body_deadline is not None and now >= self.body_deadline:
            self._slow_body()

    def _slow_headers(self) -> None:
        """A request's headers did not all arrive in time: close, saying nothing (uvicorn
        waited forever, so a client trickling bytes held a connection as long as it liked)."""
        self.header_deadline = None
        if not self.busy:  # else the deadline is set again once the answer is written
            self.transport.close()

    def _slow_body(self) -> None:
        """A body did not arrive in time of its headers: 408, and close."""
        self.body_deadline = None
        if not self.busy and not self.transport.is_closing():
            status, body, _ = render_error(RequestTimeout(self.shared.limits.read_timeout))
            self.transport.write(_head(status, len(body), close=True) + body)
        self.transport.close()

    def _idle(self) -> None:
        self.idle_deadline = None
        if not self.busy and not self.waiting:
            self.transport.close()

    def _fail(self, status: int, reason: str) -> None:
        """Nothing more can be read: answer what was read, then close; else refuse, saying why."""
        if self.busy or self.waiting:
            self.closing = True
            self.transport.pause_reading()
            return
        if not self.transport.is_closing():
            body = reason.encode()
            self.transport.write(_head(status, len(body), close=True, text=True) + body)
        self.transport.close()


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: the request's headers passed `MAX_HEADER_BYTES`."""


class _Exchange:
    """The ASGI `receive` and `send` of one request."""

    __slots__ = ("chunked", "complete", "connection", "headers", "keep_alive", "read",
                 "request", "started", "status")  # fmt: skip

    def __init__(self, connection: Connection, request: _Request) -> None:
        self.connection = connection
        self.request = request
        self.status: int | None = None
        self.headers: Any = ()
        self.started = False  # the head is written
        self.complete = False
        self.keep_alive = True
        self.chunked = False
        self.read = False

    async def receive(self) -> dict[str, Any]:
        if not self.read:
            self.read = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        await self.connection.gone
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("the answer was started twice")
            self.status = int(message["status"])
            self.headers = message.get("headers") or ()
        elif kind == "http.response.body":
            if self.status is None or self.complete:
                raise RuntimeError("a body was sent before the answer started, or after it")
            await self._write(bytes(message.get("body", b"")), more=message.get("more_body", False))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _write(self, body: bytes, *, more: bool) -> None:
        connection = self.connection
        if not connection.writable.is_set():
            await connection.writable.wait()
        transport = connection.transport
        if transport.is_closing():  # the client left: nothing to write to
            self.complete = not more
            return
        if not self.started:
            self.started = True
            head = self._head(len(body), more=more)
            transport.write(head + (_chunk(body) if self.chunked and body else body))
        elif body:
            transport.write(_chunk(body) if self.chunked else body)
        if not more:
            self.complete = True
            if self.chunked:
                transport.write(b"0\r\n\r\n")

    def _head(self, length: int, *, more: bool) -> bytes:
        status = self.status or 500
        lines = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        has_length = False
        for name, value in self.headers:
            lowered = bytes(name).lower()
            if lowered == b"content-length":
                has_length = True
            elif lowered == b"connection":
                if bytes(value).lower() == b"close":
                    self.keep_alive = False
                continue  # written below, once
            lines.append(bytes(name) + b": " + bytes(value) + b"\r\n")
        if not has_length:
            if more:
                self.chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
            else:
                lines.append(b"content-length: %d\r\n" % length)
        connection = self.connection
        if connection.closing and not connection.waiting:
            self.keep_alive = False  # the server stops: this is the connection's last answer
        if not (self.keep_alive and self.request.keep_alive):
            lines.append(b"connection: close\r\n")
        lines.append(b"date: " + _Dates.header() + b"\r\n\r\n")
        return b"".join(lines)

    async def error(self, error: ModelyardError) -> None:
        """Answer a refusal made while reading (413): the body was not read, so close."""
        status, body, headers = render_error(error, oip=True)
        self.keep_alive = False
        raw = [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]
        await self.send({"type": "http.response.start", "status": status, "headers": raw})
        await self.send({"type": "http.response.body", "body": body})

    async def send_plain(self, status: int, body: bytes) -> None:
        """Answer with plain text and close (the app failed)."""
        self.keep_alive = False
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def _head(status: int, length: int, *, close: bool, text: bool = False) -> bytes:
    kind = b"text/plain; charset=utf-8" if text else b"application/json"
    return (_STATUS_LINES[status] + b"content-type: " + kind + b"\r\ncontent-length: %d\r\n"
            % length + (b"connection: close\r\n" if close else b"") + b"date: "
            + _Dates.header() + b"\r\n\r\n")  # fmt: skip


def _chunk(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n"


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None


def _shown(url: bytes) -> str:
    return printable_path({"raw_path": url})
