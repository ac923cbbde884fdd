"""Running an ASGI app on the lean HTTP protocol (`_http`): its lifespan, the listening socket,
SIGTERM, and several worker processes sharing one socket.

`run_http` serves in this process until SIGTERM or Ctrl-C: the app's lifespan starts (models
load), the socket (bound already, so clients wait in its queue meanwhile) is served, `on_ready`
is called; at the signal the socket stops accepting, every connection answers the requests it
has read and closes (`drain_seconds` at most), the lifespan shuts down, and it returns (exit 0).

`run_http_workers` starts `workers` processes (spawned, so each imports the app factory afresh)
that share the socket, restarts one that dies, and passes SIGTERM on to all of them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from modelyard.api._http import App, Connection, Limits, Shared
from modelyard.api._listening import Listener
from modelyard.api._server_log import LEVELS
from modelyard.errors import ModelyardError
from modelyard.settings import Settings

log = logging.getLogger("modelyard.serving")

KEEP_ALIVE_SECONDS = 5.0
"""How long an idle kept-alive connection stays open (as under uvicorn, `_running`)."""

DRAIN_SECONDS = 30.0
"""How long a stopping server waits for the requests it has read to be answered."""

_BACKLOG = 2048


@dataclass(frozen=True, slots=True)
class Options:
    """How a server answers: its limits, TLS files, and whether each request is logged."""

    limits: Limits
    tls: Mapping[str, str] | None = None  # `ssl_certfile`, `ssl_keyfile` (`tls_options`)
    access_log: bool = False
    drain_seconds: float = DRAIN_SECONDS


def lean_options(settings: Settings, tls: Mapping[str, str] | None = None) -> Options:
    """The lean server's limits and logging from the settings (the read timeout, the body
    limit of `serve`, one access line per request at `info` and `debug`)."""
    level = settings.server_log_level
    limits = Limits(max_body_bytes=settings.serve_max_body_bytes,
                    read_timeout=settings.server_read_timeout_seconds,
                    keep_alive=KEEP_ALIVE_SECONDS)  # fmt: skip
    return Options(limits=limits, tls=tls or None,
                   access_log=LEVELS.index(level) >= LEVELS.index("info"))  # fmt: skip


def run_lean(
    app: Any,
    *,
    listener: Listener,
    settings: Settings,
    tls: Mapping[str, str] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve `app` on the listener's socket with the lean HTTP/1.1 server (`_http`) until
    SIGTERM; the body limit, read timeout and access log are the server's (no middleware)."""
    run_http(app, sock=listener.socket, options=lean_options(settings, tls), on_ready=on_ready)


def run_lean_workers(
    factory: str,
    *,
    listener: Listener,
    workers: int,
    settings: Settings,
    tls: Mapping[str, str] | None = None,
) -> None:
    """Serve the app `factory` (an import string) from `workers` processes of the lean server
    sharing the listener's socket; SIGTERM drains every worker."""
    target = WorkerTarget(factory, lean_options(settings, tls))
    run_http_workers(target, sock=listener.socket, workers=workers)


def run_http(
    app: App,
    *,
    sock: socket.socket,
    options: Options,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve `app` on the listening `sock` until SIGTERM or SIGINT (handled: the function
    returns once drained). `ModelyardError` when the app's startup fails."""
    serving = serve_until_stopped(app, sock=sock, options=options, on_ready=on_ready)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows has no uvloop: asyncio's own loop serves
        asyncio.run(serving)
    else:
        uvloop.run(serving)


async def serve_until_stopped(
    app: App,
    *,
    sock: socket.socket,
    options: Options,
    on_ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set, or a SIGTERM/SIGINT arrives (when called in the main
    thread, which is then where signals go)."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    lifespan = Lifespan(app)
    with _stopping_on_signals(loop, stop):
        await lifespan.startup()
        try:
            await _serve(app, sock, options, stop, on_ready)
        finally:
            await lifespan.shutdown()


async def _serve(
    app: App,
    sock: socket.socket,
    options: Options,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None,
) -> None:
    loop = asyncio.get_running_loop()
    context = _ssl_context(options.tls)
    shared = Shared(app, options.limits, access_log=options.access_log,
                    scheme="https" if context else "http")  # fmt: skip
    server = await loop.create_server(
        lambda: Connection(shared), sock=sock, ssl=context, backlog=_BACKLOG
    )
    ticker = loop.create_task(_tick(shared))
    if on_ready is not None:
        on_ready()
    await stop.wait()
    server.close()  # no new connections; those open answer what they have read
    for connection in list(shared.connections):
        connection.shutdown()
    deadline = time.monotonic() + options.drain_seconds
    while shared.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    ticker.cancel()
    for connection in list(shared.connections):  # past the deadline
        connection.transport.abort()


async def _tick(shared: Shared) -> None:
    """Close connections whose header, body or idle deadline has passed, a few times within
    the shortest of those limits."""
    limits = shared.limits
    interval = max(0.02, min(0.5, limits.read_timeout / 5, limits.keep_alive / 5))
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        for connection in list(shared.connections):
            connection.expire(now)


class Lifespan:
    """The ASGI lifespan of `app`: startup before the first request, shutdown after the last."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.events: dict[str, asyncio.Event] = {}
        self.failure: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Run the app's startup; `ModelyardError` naming the failure when it fails."""
        self.task = asyncio.get_running_loop().create_task(self._run())
        await self._ask("startup")
        if self.failure is not None:
            raise ModelyardError(f"the server did not start: {self.failure}")

    async def shutdown(self) -> None:
        """Run the app's shutdown (drain the models)."""
        if self.task is not None and not self.task.done():
            await self._ask("shutdown")
            await self.task

    async def _ask(self, phase: str) -> None:
        done = self.events.setdefault(phase, asyncio.Event())
        await self.messages.put({"type": f"lifespan.{phase}"})
        waiting = asyncio.get_running_loop().create_task(done.wait())
        running = {self.task} if self.task is not None else set()
        await asyncio.wait({waiting, *running}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not done.is_set() and self.failure is None:
            self.failure = f"the app ended its lifespan before lifespan.{phase}.complete"

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": {}}  # fmt: skip
        try:
            await self.app(scope, self.messages.get, self._send)
        except Exception as error:
            self.failure = self.failure or f"{type(error).__name__}: {error}"
            log.exception("the server's lifespan failed")

    async def _send(self, message: dict[str, Any]) -> None:
        kind = str(message["type"])
        phase = kind.split(".")[1]
        if kind.endswith(".failed"):
            self.failure = str(message.get("message") or kind)
        self.events.setdefault(phase, asyncio.Event()).set()


@contextmanager
def _stopping_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while open (in the main thread only: elsewhere signals
    do not reach Python); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(_signum: int, _frame: Any) -> None:
        loop.call_soon_threadsafe(stop.set)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ssl_context(tls: Mapping[str, str] | None) -> ssl.SSLContext | None:
    if not tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls["ssl_certfile"], tls["ssl_keyfile"])
    return context


@dataclass(frozen=True, slots=True)
class WorkerTarget:
    """What a worker process runs: the app `factory` (`module:function`) makes, served on the
    shared socket (the app says when it is ready, as `WhenReady` does)."""

    factory: str
    options: Options

    def __call__(self, sock: socket.socket) -> None:
        module, _, name = self.factory.partition(":")
        app = getattr(importlib.import_module(module), name)()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
        try:
            run_http(app, sock=sock, options=self.options)
        except ModelyardError as error:
            log.error("%s", error.message)
            raise SystemExit(3) from None


def run_http_workers(target: WorkerTarget, *, sock: socket.socket, workers: int) -> None:
    """Run `workers` processes of `target` sharing `sock` until SIGTERM or SIGINT, which is
    passed on to them; a worker that dies is started again (unless it failed to start)."""
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def start() -> Any:
        process = context.Process(target=target, args=(sock,), daemon=False)
        process.start()
        return process

    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}  # fmt: skip
    processes = [start() for _ in range(workers)]
    try:
        while not stop.wait(0.5):
            for index, process in enumerate(processes):
                if process.exitcode is None:
                    continue
                if process.exitcode == 3:  # the app could not start: so would the next one
                    stop.set()
                    break
                log.warning("worker %s exited (%s); starting another", process.pid,
                            process.exitcode)  # fmt: skip
                processes[index] = start()
    finally:
        for process in processes:
            if process.exitcode is None:
                process.terminate()  # SIGTERM: it drains, then exits
        for process in processes:
            process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if any(process.exitcode == 3 for process in processes):
        raise ModelyardError("the server did not start: a worker's startup failed (see above)")
