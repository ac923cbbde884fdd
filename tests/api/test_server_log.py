"""What the servers print: one access line per request (escaped: the path comes from anyone),
start-up lines unless the level is above warning, and the ready callback after startup."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from modelyard.api._running import WhenReady
from modelyard.api._server_log import (
    AccessLog,
    ServerFormatter,
    access_logged,
    log_to_stderr,
    printable_path,
    say,
    uvicorn_level,
)


async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def request(app: Any, path: str, *, raw: bytes | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "client": ("10.0.0.7", 5000)}
    if raw is not None:
        scope["raw_path"] = raw
    asyncio.run(app(scope, receive, send))
    return sent


def test_each_request_is_one_line_with_its_status_and_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="modelyard.access")
    sent = request(AccessLog(answer), "/v2/models/iris/infer", raw=b"/v2/models/iris/infer?x=1")
    assert sent[0]["status"] == 201
    with pytest.raises(RuntimeError, match="boom"):
        request(AccessLog(answer), "/boom")
    first, second = (record.getMessage() for record in caplog.records)
    assert first.startswith("10.0.0.7 POST /v2/models/iris/infer 201 ") and first.endswith(" ms")
    assert second.startswith("10.0.0.7 POST /boom - ")  # no answer began


def test_paths_are_escaped_and_cut_short() -> None:
    assert printable_path({"raw_path": b"/a\x1b[31m\x7f\xff"}) == "/a\\x1b[31m\\x7f\\xff"
    assert printable_path({"path": "/plain"}) == "/plain"
    long = printable_path({"raw_path": b"/" + b"a" * 500})
    assert len(long) == 201 and long.endswith("…")


def test_the_format_puts_access_lines_plainly() -> None:
    formatter = ServerFormatter()
    line = logging.LogRecord("modelyard.access", logging.INFO, "", 0, "GET / 200", None, None)
    other = logging.LogRecord("modelyard.serving", logging.ERROR, "", 0, "refused", None, None)
    assert formatter.format(line).endswith(" GET / 200")
    assert formatter.format(other).endswith(" ERROR modelyard.serving: refused")


def test_logging_goes_to_stderr_unless_the_program_set_it_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, logger = logging.getLogger(), logging.getLogger("modelyard")
    saved = root.handlers[:]
    root.handlers.clear()  # as in a fresh process: nobody configured logging
    try:
        restore = log_to_stderr("warning")
        logging.getLogger("modelyard.access").info("hidden")
        logging.getLogger("modelyard.serving").warning("shown")
        restore()
    finally:
        root.handlers[:] = saved
    assert capsys.readouterr().err.endswith(" WARNING modelyard.serving: shown\n")
    assert logger.handlers == [] and logger.level == logging.NOTSET
    restore = log_to_stderr("debug")  # pytest's handlers are on the root: only the level is set
    assert logger.handlers == [] and logger.level == logging.DEBUG
    restore()


def test_levels(capsys: pytest.CaptureFixture[str]) -> None:
    say("warning", "serving iris at http://127.0.0.1:8080")
    say("error", "hidden")
    assert capsys.readouterr().err == "serving iris at http://127.0.0.1:8080\n"
    assert uvicorn_level("info") == "warning" and uvicorn_level("debug") == "debug"
    assert isinstance(access_logged(answer, "info"), AccessLog)
    assert access_logged(answer, "warning") is answer


def test_ready_is_called_once_startup_completes() -> None:
    calls: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            calls.append("started")
            await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await answer(scope, receive, send)

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        calls.append(message["type"])

    wrapped = WhenReady(app, lambda: calls.append("ready"))
    asyncio.run(wrapped({"type": "lifespan"}, receive, send))
    assert calls == ["started", "lifespan.startup.complete", "ready", "lifespan.shutdown.complete"]
    assert request(wrapped, "/")[0]["status"] == 201
