"""A real HTTP receiver for registry webhook tests: a tiny server thread on loopback that
records what it gets and answers with the status codes it is told to."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """The receiver's state: its base URL, what it got, and what it answers next (`answers`,
    used up in order, then `default`)."""

    url: str
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    default: int = 204
    redirect_to: str = ""

    def wait(self, count: int, *, timeout: float = 20.0) -> list[Received]:
        """The requests so far, once there are at least `count` (AssertionError on timeout)."""
        arrived = threading.Event()
        deadline = threading.Timer(timeout, arrived.set)
        deadline.start()
        try:
            while len(self.received) < count and not arrived.wait(0.05):
                pass
        finally:
            deadline.cancel()
        assert len(self.received) >= count, f"got {len(self.received)} of {count} deliveries"
        return list(self.received)


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver on a free loopback port, stopped after the block."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            status = state.answers.pop(0) if state.answers else state.default
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", state.redirect_to or "http://127.0.0.1:9/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
