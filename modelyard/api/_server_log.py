"""What the servers print on stderr: where they listen, when they are ready, one line per
request, and the warnings and errors of their parts, at the operator's `--log-level`.

uvicorn's own lines stay off below `warning` (its "Uvicorn running on" would repeat ours
without what each reference resolved to), and its access log is replaced by `AccessLog`,
which also says how long each request took.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

LEVELS = ("critical", "error", "warning", "info", "debug")
"""The levels `--log-level` takes: `info` (the default) logs every request, `warning` only
problems; `error` and `critical` also hide the start-up lines."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

access = logging.getLogger("modelyard.access")

_MAX_PATH = 200
_UNPRINTABLE = {code: f"\\x{code:02x}" for code in [*range(32), 127]}


class AccessLog:
    """ASGI middleware logging `127.0.0.1 POST /v2/models/iris/infer 200 3.1 ms` at INFO on
    `modelyard.access` once each request is answered."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | str = "-"  # no answer began: the app raised or the client left

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            milliseconds = (time.perf_counter() - started) * 1000
            client = (scope.get("client") or ("-",))[0]
            method = scope.get("method", "-")
            path = printable_path(scope)
            access.info("%s %s %s %s %.1f ms", client, method, path, status, milliseconds)


def printable_path(scope: Scope) -> str:
    """The request's path as sent (no query), escaped and cut short: it comes from anyone and
    goes to a terminal, where an escape sequence would be obeyed."""
    raw = scope.get("raw_path") or str(scope.get("path", "")).encode()
    path = bytes(raw).split(b"?", 1)[0].decode("ascii", "backslashreplace")
    path = path.translate(_UNPRINTABLE)
    return path if len(path) <= _MAX_PATH else path[:_MAX_PATH] + "…"


class ServerFormatter(logging.Formatter):
    """`2026-12-02 11:30:01 <access line>`; other records add their level and logger."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if record.name == access.name:
            return f"{self.formatTime(record, self.datefmt)} {record.getMessage()}"
        return super().format(record)


def log_to_stderr(level: str) -> Callable[[], None]:
    """Send modelyard's log records at `level` and above to stderr (unless the program has set
    up logging itself: then only the level is set, and its handlers print them); returns what
    puts things back as they were."""
    logger = logging.getLogger("modelyard")
    previous = logger.level
    logger.setLevel(level.upper())
    handler: logging.Handler | None = None
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ServerFormatter())
        logger.addHandler(handler)

    def restore() -> None:
        logger.setLevel(previous)
        if handler is not None:
            logger.removeHandler(handler)

    return restore


def uvicorn_level(level: str) -> str:
    """uvicorn's level for ours: its `info` lines repeat what the servers print themselves."""
    return "warning" if level == "info" else level


def say(level: str, line: str) -> None:
    """Print a start-up line on stderr (stdout is for data), unless `level` is above warning."""
    if LEVELS.index(level) >= LEVELS.index("warning"):
        print(line, file=sys.stderr, flush=True)


def access_logged(app: Any, level: str) -> Any:
    """`app` behind `AccessLog` when `level` shows requests (`info`, `debug`); else `app`, so a
    quiet server pays nothing per request."""
    return AccessLog(app) if LEVELS.index(level) >= LEVELS.index("info") else app
