"""The lean HTTP/1.1 server of `modelyard serve` (`_http`, `_http_server`), run in a thread on a
loopback port and spoken to over raw sockets: keep-alive, pipelining, limits and timeouts,
streaming, failures of the app, the access log, TLS, the lifespan and the graceful stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from modelyard.api._http import Limits
from modelyard.api._http_server import (
    Lifespan,
    Options,
    WorkerTarget,
    lean_options,
    run_http_workers,
    serve_until_stopped,
)
from modelyard.api._listening import listen
from modelyard.errors import ModelyardError
from modelyard.settings import Settings
from tests.security.test_tls import make_certificate

LIMITS = Limits(max_body_bytes=1000, read_timeout=1.0, keep_alive=2.0)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes what it got; a few paths misbehave on purpose."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    message = await receive()
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/silent":
        return
    if path == "/slow":
        await asyncio.sleep(0.5)
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body", "body": b"two", "more_body": False})
        return
    if path == "/half":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("broken off")
    if path == "/gone":
        assert (await receive())["type"] == "http.disconnect"
        return
    headers = [(b"content-type", b"application/json")]
    if path == "/close":
        headers.append((b"connection", b"close"))
    body = orjson.dumps({"method": scope["method"], "path": path, "raw": scope["raw_path"].decode(),
                         "query": scope["query_string"].decode(), "size": len(message["body"]),
                         "scheme": scope["scheme"]})  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(
    target: Any = app, *, limits: Limits = LIMITS, access_log: bool = False, tls: Any = None
) -> Iterator[tuple[str, int]]:
    """The server in a thread of its own; stopped (gracefully) on exit."""
    listener = listen("127.0.0.1", 0)
    ready = threading.Event()
    state: dict[str, Any] = {}
    options = Options(limits=limits, access_log=access_log, drain_seconds=3.0, tls=tls)

    async def main() -> None:
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await serve_until_stopped(target, sock=listener.socket, options=options,
                                  on_ready=ready.set, stop=state["stop"])  # fmt: skip

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield listener.socket.getsockname()[:2]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
        assert not thread.is_alive()


def exchange(address: tuple[str, int], data: bytes, *, wait: float = 0.3) -> bytes:
    """Send raw bytes; everything the server writes until it closes or goes quiet."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        return read_all(sock, wait=wait)


def read_all(sock: socket.socket, *, wait: float) -> bytes:
    sock.settimeout(wait)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def post(path: str, body: bytes = b"{}", *extra: bytes) -> bytes:
    headers = b"".join(line + b"\r\n" for line in extra)
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + headers + b"\r\n" + body)  # fmt: skip


def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    with serving() as address:
        pipelined = post("/slow?x=1") + post("/a%20b", b"12345") + post("/c")
        answer = exchange(address, pipelined, wait=1.5)
        with httpx.Client(base_url=f"http://{address[0]}:{address[1]}") as client:
            assert client.get("/one").json()["method"] == "GET"
            assert client.post("/two", content=b"x" * 10).json()["size"] == 10  # same connection
    answers = answer.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 3
    first, second, third = (orjson.loads(part.split(b"\r\n\r\n", 1)[1]) for part in answers)
    assert (first["path"], first["query"]) == ("/slow", "x=1")
    assert (second["path"], second["raw"], second["size"]) == ("/a b", "/a%20b", 5)
    assert third["path"] == "/c"
    assert b"content-length: " in answer and b"date: " in answer
    assert b"connection: close" not in answer


def test_an_absolute_url_is_served_by_its_path() -> None:
    with serving() as address:
        answer = exchange(address, b"GET http://x/abs?q=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert (body["path"], body["query"]) == ("/abs", "q=2")


def test_http_10_and_connection_close_end_the_connection() -> None:
    with serving() as address:
        old = exchange(address, b"GET /old HTTP/1.0\r\n\r\n" + post("/never"), wait=2)
        closing = exchange(address, post("/close") + post("/never"), wait=2)
    assert old.count(b"HTTP/1.1 200") == 1 and b"connection: close" in old
    assert closing.count(b"HTTP/1.1 200") == 1 and closing.count(b"connection: close") == 1


def test_bodies_over_the_limit_are_refused_413() -> None:
    with serving() as address:
        declared = exchange(address, post("/big", b"x" * 1001))
        chunks = b"3e8\r\n" + b"x" * 1000 + b"\r\n2\r\nxx\r\n"
        chunked = exchange(address, b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                           b"chunked\r\n\r\n" + chunks)  # fmt: skip
        fine = exchange(address, b"POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                        b"chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")  # fmt: skip
    for answer in (declared, chunked):
        assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        assert b"connection: close" in answer and b'"code":"payload_too_large"' in answer
    assert orjson.loads(fine.split(b"\r\n\r\n", 1)[1])["size"] == 5


def test_slow_headers_are_cut_off_and_a_slow_body_gets_408() -> None:
    with serving() as address:
        began = time.monotonic()
        headers = exchange(address, b"POST /x HTTP/1.1\r\nHost: x\r\n", wait=3)
        took = time.monotonic() - began
        body = exchange(address, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{",
                        wait=3)  # fmt: skip
    assert headers == b"" and 0.9 < took < 2.5
    assert body.startswith(b"HTTP/1.1 408 ") and b"connection: close" in body


def test_an_idle_connection_is_closed_after_keep_alive() -> None:
    with serving(limits=Limits(max_body_bytes=10, read_timeout=5, keep_alive=0.3)) as address:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(post("/x"))
            answer = read_all(sock, wait=2)  # ends when the server closes
    assert answer.count(b"HTTP/1.1 200") == 1


def test_expect_100_continue_is_answered() -> None:
    with serving() as address, socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"Expect: 100-continue\r\n\r\n")  # fmt: skip
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        assert read_all(sock, wait=0.3).startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"NOT HTTP\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", b"200"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    ],
)
def test_requests_that_are_not_plain_http_are_refused_or_closed(data: bytes, status: bytes) -> None:
    with serving() as address:
        answer = exchange(address, data)
    assert answer.startswith(b"HTTP/1.1 " + status) and b"connection: close" in answer


def test_an_app_that_fails_or_says_nothing_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    with serving() as address:
        boom = exchange(address, post("/boom"))
        silent = exchange(address, post("/silent"))
        half = exchange(address, post("/half"), wait=1)
    assert boom.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert silent.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert half == b""  # started, never finished: the connection ends
    assert "unexpected error answering POST /boom" in caplog.text


def test_a_streamed_answer_is_chunked() -> None:
    with serving() as address:
        answer = exchange(address, post("/stream"))
    assert b"transfer-encoding: chunked" in answer
    assert answer.endswith(b"\r\n\r\n4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n")


def test_a_second_receive_waits_for_the_client_to_leave() -> None:
    with serving() as address:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(post("/gone"))
            time.sleep(0.2)
        with httpx.Client(base_url=f"http://{address[0]}:{address[1]}") as client:
            assert client.get("/still").status_code == 200


def test_each_request_is_one_access_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelyard.access")
    with serving(access_log=True) as address:
        exchange(address, post("/v2/models/iris/infer?x=1") + post("/big", b"x" * 2000))
    first, second = (r.getMessage() for r in caplog.records if r.name == "modelyard.access")
    assert first.startswith("127.0.0.1 POST /v2/models/iris/infer 200 ") and first.endswith(" ms")
    assert second.startswith("127.0.0.1 POST /big 413 ")


def test_stopping_answers_what_was_read_then_closes() -> None:
    with serving() as address:
        sock = socket.create_connection(address, timeout=5)
        sock.sendall(post("/slow") + post("/after"))
        time.sleep(0.1)
        idle = socket.create_connection(address, timeout=5)
        time.sleep(0.1)
    with sock, idle:
        answer = read_all(sock, wait=1)
        assert idle.recv(10) == b""  # idle: closed at once
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.count(b"connection: close") == 1  # on the last answer only


def test_https(tmp_path: Path) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    tls = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}
    with serving(tls=tls) as (host, port):
        context = ssl.create_default_context(cafile=str(certfile))
        with httpx.Client(verify=context) as client:
            answer = client.post(f"https://{host}:{port}/secure", content=b"abc").json()
    assert (answer["scheme"], answer["size"]) == ("https", 3)


def test_a_failed_startup_is_an_error_naming_it() -> None:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no model"})

    async def no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("lifespan is not supported")

    async def quits(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()

    sock = listen("127.0.0.1", 0).socket
    options = lean_options(Settings())
    for target, message in [(failing, "no model"), (no_lifespan, "ValueError: lifespan"),
                            (quits, "ended its lifespan")]:  # fmt: skip
        with pytest.raises(ModelyardError, match=message):
            asyncio.run(serve_until_stopped(target, sock=sock, options=options))
    sock.close()


def test_the_lifespan_shuts_down_once() -> None:
    calls: list[str] = []

    async def target(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (message := await receive())["type"] != "lifespan.shutdown":
            calls.append(message["type"])
            await send({"type": "lifespan.startup.complete"})
        calls.append(message["type"])
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> None:
        lifespan = Lifespan(target)
        await lifespan.startup()
        await lifespan.shutdown()
        await lifespan.shutdown()  # the app has returned: nothing more to say

    asyncio.run(main())
    assert calls == ["lifespan.startup", "lifespan.shutdown"]


def test_lean_options_follow_the_settings() -> None:
    quiet = lean_options(Settings(server_log_level="warning", serve_max_body_bytes=5000))
    loud = lean_options(Settings(server_read_timeout_seconds=7), {"ssl_certfile": "c"})
    assert not quiet.access_log and quiet.limits.max_body_bytes == 5000
    assert loud.access_log and loud.limits.read_timeout == 7 and loud.tls == {"ssl_certfile": "c"}


def worker_app() -> Any:
    """The app factory the worker processes of the next tests import."""
    return app


def failing_worker_app() -> Any:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no model"})

    return failing


def test_worker_processes_share_the_socket_and_stop_on_sigterm() -> None:
    listener = listen("127.0.0.1", 0)
    url = listener.url()
    answers: list[int] = []

    def ask_then_stop() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not answers:
            try:
                answers.append(httpx.post(f"{url}/x", content=b"{}", timeout=5).status_code)
            except httpx.TransportError:
                time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    asker = threading.Thread(target=ask_then_stop, daemon=True)
    asker.start()
    target = WorkerTarget(f"{__name__}:worker_app", lean_options(Settings()))
    with listener.socket:
        run_http_workers(target, sock=listener.socket, workers=2)
    asker.join(10)
    assert answers == [200]


def test_workers_that_cannot_start_stop_the_server() -> None:
    target = WorkerTarget(f"{__name__}:failing_worker_app", lean_options(Settings()))
    listener = listen("127.0.0.1", 0)
    with listener.socket, pytest.raises(ModelyardError, match="a worker's startup failed"):
        run_http_workers(target, sock=listener.socket, workers=1)
