"""Run an ASGI app until SIGTERM or Ctrl-C, then drain and return (exit 0).

The registry server (`modelyard server`) runs on uvicorn here (`run`); the inference server
(`modelyard serve`) runs on the lean HTTP/1.1 server of `_http_server`, whose requests are small
and many (the HTTP layer was most of their cost: bench/README.md). Both have the same timeouts
and keep-alive. Under uvicorn, an idle kept-alive connection is closed after
`KEEP_ALIVE_SECONDS`; a client that has not sent a request's headers within `read_timeout` of
connecting (or of its previous response) is disconnected (`HeaderTimeout`), and one that has
not sent its body in that time gets 408 (`RequestLimits`, in the registry app).

The socket is bound and listening before the app starts (`listen`), and `on_ready`
(`WhenReady`) tells the caller once the app's startup (loading models) is done, for the ready
line.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelyard.api._listening import Listener, listen
from modelyard.api._server_log import Message, Receive, Scope, Send, uvicorn_level
from modelyard.errors import ConfigurationError
from modelyard.settings import Settings

KEEP_ALIVE_SECONDS = 5.0
"""How long an idle kept-alive connection stays open."""

DEFAULT_READ_TIMEOUT = 30.0
READ_TIMEOUT = "modelyard_read_timeout"
"""The attribute of uvicorn's `Config` that carries the read timeout to `HeaderTimeout` (the
config travels to worker processes; a class made per timeout would not)."""


class HeaderTimeout(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers have not all
    arrived within `read_timeout` seconds (uvicorn itself waits forever: a client trickling its
    headers a byte at a time held a connection open as long as it liked)."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:  # pipelined: headers are in
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        seconds = getattr(self.config, READ_TIMEOUT, DEFAULT_READ_TIMEOUT)
        self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def config(
    app: Any, *, host: str, port: int, read_timeout: float, log_level: str = "info", **more: Any
) -> Any:
    """uvicorn's `Config` for both servers."""
    import uvicorn

    settings = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=uvicorn_level(log_level),
        access_log=False,
        loop="uvloop",
        http=HeaderTimeout,
        lifespan="on",
        timeout_graceful_shutdown=30,
        timeout_keep_alive=int(KEEP_ALIVE_SECONDS),
        **more,
    )
    setattr(settings, READ_TIMEOUT, read_timeout)
    return settings


def tls_options(settings: Settings) -> dict[str, str]:
    """uvicorn's HTTPS options from the settings (none: plain HTTP)."""
    if settings.tls_certfile is None or settings.tls_keyfile is None:
        return {}
    for path in (settings.tls_certfile, settings.tls_keyfile):
        if not path.is_file():
            raise ConfigurationError(f"TLS file {path} does not exist")
    return {"ssl_certfile": str(settings.tls_certfile), "ssl_keyfile": str(settings.tls_keyfile)}


class WhenReady:
    """ASGI middleware calling `ready()` once the app's lifespan startup is complete (the
    socket already listens, so the server answers from then on)."""

    def __init__(self, app: Any, ready: Callable[[], None]) -> None:
        self.app = app
        self.ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self.ready()

        await self.app(scope, receive, sending)


def run(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    tls: Mapping[str, str] | None = None,
    listener: Listener | None = None,
    log_level: str = "info",
    on_ready: Callable[[], None] | None = None,
    on_exit: Callable[[], None] | None = None,
) -> None:
    """Serve `app` on `host:port` (or the socket of `listener`, bound already) with uvloop
    and httptools (HTTPS with `tls`, from `tls_options`); `on_ready` is called once the app
    has started, `on_exit` when a signal asks it to stop (to end endless responses, which
    the drain would otherwise wait for). Blocks until stopped."""
    import uvicorn

    listener = listener or listen(host, port)
    host, port = listener.socket.getsockname()[:2]
    if on_ready is not None:
        app = WhenReady(app, on_ready)

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after draining, so the exit status would say
            # "killed"; for a server a SIGTERM is the normal way to stop.
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if on_exit is not None:
                on_exit()

    settings = config(app, host=host, port=port, read_timeout=read_timeout, log_level=log_level,
                      **(tls or {}))  # fmt: skip
    Server(settings).run(sockets=[listener.socket])
