"""Alias moves from a registry server's event stream (`GET /api/v1/events`, Server-Sent Events),
for replicas that follow aliases through `Yard(url=...)`.

`StreamAliasEvents` reads the stream in a thread and reconnects with backoff when it breaks;
after each (re)connect it wakes the follower to check everything, since moves made while it
was away were not heard. A server without the stream (404) or a token without the reader role
(401, 403) stops it: the follower's polling goes on alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

import httpx

from modelyard.registry import AliasMove

log = logging.getLogger("modelyard.serving")

PATH = "/events"
"""The stream, under the client's `/api/v1` base URL."""
READ_SECONDS = 30.0
"""A stream silent this long is dead (the server sends a comment every 10 s)."""
BACKOFF_SECONDS = (0.1, 5.0)
_GIVE_UP = frozenset({401, 403, 404})
Wake = Callable[[AliasMove | None], None]


class StreamAliasEvents:
    """`AliasEvents` from a registry server's event stream, over `client` (whose base URL is the
    server's `/api/v1`), sending `headers` (the bearer token)."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        headers: Mapping[str, str] | None = None,
        backoff: tuple[float, float] = BACKOFF_SECONDS,
    ) -> None:
        self.client = client
        self.headers = {**(headers or {}), "Accept": "text/event-stream"}
        self.backoff = backoff
        self.connects = 0
        """How many times the stream has been opened (a test waits for a reconnect)."""
        self._stopping = threading.Event()
        self._response: httpx.Response | None = None
        self._thread: threading.Thread | None = None

    def start(self, wake: Wake) -> None:
        """Read the stream in a daemon thread, calling `wake` for each move."""
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, args=(wake,), name="alias-stream", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the stream and stop."""
        self._stopping.set()
        response = self._response
        if response is not None:
            response.close()  # the reading thread's next read fails, and it ends
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, wake: Wake) -> None:
        delay = self.backoff[0]
        while not self._stopping.is_set():
            try:
                status = self._read(wake)
            except Exception as error:  # a broken stream, a server restarting: reconnect
                if self._stopping.is_set():
                    break
                log.warning("alias stream: %s; reconnecting in %.1f s (polling meanwhile)",
                            str(error) or type(error).__name__, delay)  # fmt: skip
            else:
                if status in _GIVE_UP:
                    log.warning("alias stream: the server answered %s; following by polling "
                                "alone", status)  # fmt: skip
                    return
                if status == 200:
                    delay = self.backoff[0]  # it had worked: try again soon
            self._stopping.wait(delay)
            delay = min(delay * 2, self.backoff[1])

    def _read(self, wake: Wake) -> int:
        timeout = httpx.Timeout(10.0, read=READ_SECONDS)
        with self.client.stream("GET", PATH, headers=self.headers, timeout=timeout) as response:
            if response.status_code != 200:
                return response.status_code
            self._response = response
            self.connects += 1
            try:
                for kind, data in parse_events(response.iter_lines()):
                    if kind == "alias":
                        move = AliasMove.parse(data)
                        if move is not None:
                            wake(move)
                    elif kind in ("ready", "resync"):
                        wake(None)
            finally:
                self._response = None
        return 200


def parse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Server-Sent Events as `(event, data)`: comments skipped, `data` lines joined."""
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
