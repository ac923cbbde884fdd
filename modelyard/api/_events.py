"""`GET /api/v1/events`: alias moves as Server-Sent Events, for replicas that follow aliases
through this server (`Yard(url=...)`).

One `EventHub` per server hears the registry's moves (LISTEN on PostgreSQL, a 0.25 s poll of
the newest move on SQLite: `YardAliasEvents`) and fans them out to each open stream. A stream
says `event: ready` when it opens (check everything: what moved before was not sent),
`event: alias` with `{"model", "alias", "version"}` per move of a model the caller may read,
`event: resync` when it fell behind or the registry's listener reconnected, and a comment every
`HEARTBEAT_SECONDS` so that proxies and clients know it lives. Reading it needs the reader role
on some model, as other GETs do.

    $ curl -N -H 'Authorization: Bearer myd_…' http://127.0.0.1:8080/api/v1/events
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from modelyard.api._acting import Caller
from modelyard.errors import ServerBusy
from modelyard.registry import AliasMove
from modelyard.security import Role
from modelyard.serving import AliasEvents

HEARTBEAT_SECONDS = 10.0
MAX_STREAMS = 512
"""Open streams per server; one more is answered 429."""
QUEUE = 256
"""Moves buffered per stream; a stream that falls further behind gets `resync` instead."""
_READY = b"retry: 1000\n\nevent: ready\ndata: {}\n\n"
_RESYNC = b"event: resync\ndata: {}\n\n"
_PING = b": ping\n\n"
_CLOSE = object()


class EventHub:
    """Alias moves from `events`, fanned out to every open stream. The events start with the
    first stream (a server nobody follows holds no listener); `close` (from any thread, e.g. a
    signal handler) ends the streams so that a draining server is not held open by them; `stop`
    ends the events too."""

    def __init__(self, events: AliasEvents, *, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.events = events
        self.heartbeat = heartbeat
        self._queues: set[asyncio.Queue[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return len(self._queues)

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.events.start(self._heard)

    def close(self) -> None:
        """End every stream (thread-safe)."""
        self._closed = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                self._loop.call_soon_threadsafe(self._publish, _CLOSE)

    async def stop(self) -> None:
        """End the streams and stop hearing moves."""
        self.close()
        if self._loop is not None:
            self._loop = None
            await asyncio.to_thread(self.events.stop)

    def _heard(self, move: AliasMove | None) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._publish, move)

    def _publish(self, item: object) -> None:
        for queue in self._queues:
            if queue.full():  # too far behind: what it missed becomes one resync
                while not queue.empty():
                    queue.get_nowait()
                item_for_it: object = _CLOSE if item is _CLOSE else None
                queue.put_nowait(item_for_it)
            else:
                queue.put_nowait(item)

    def subscribe(self) -> asyncio.Queue[Any]:
        """A queue of moves for a new stream; `ServerBusy` (429) past `MAX_STREAMS`."""
        if len(self._queues) >= MAX_STREAMS:
            raise ServerBusy("the alias event stream", waiting=len(self._queues), retry_after=5)
        if self._loop is None:
            self._start()
        queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE)
        self._queues.add(queue)
        return queue

    async def stream(
        self, queue: asyncio.Queue[Any], *, readable: Callable[[str], bool] | None = None
    ) -> AsyncIterator[bytes]:
        """The stream's bytes: `ready`, then the moves of models `readable` says the caller
        may read (all when None; asked in a thread: it may read the roles), until the client
        goes or the hub closes."""
        try:
            yield _READY
            while not self._closed:
                try:
                    item = await asyncio.wait_for(queue.get(), self.heartbeat)
                except TimeoutError:
                    yield _PING
                    continue
                if item is _CLOSE:
                    return
                if item is None:
                    yield _RESYNC
                elif readable is None or await asyncio.to_thread(readable, item.model):
                    yield b"event: alias\ndata: " + item.payload().encode() + b"\n\n"
        finally:
            self._queues.discard(queue)


def event_routes(hub: EventHub, acting: Any) -> APIRouter:
    """`GET /events`: the alias-move stream (reader role on some model)."""
    router = APIRouter(tags=["events"])

    @router.get(
        "/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def alias_events(caller: Caller = acting) -> StreamingResponse:
        """Alias moves as Server-Sent Events (`event: alias`, data `{"model", "alias",
        "version"}`), of models the caller may read."""
        everything = await run_in_threadpool(_check, caller)  # roles may need the database
        queue = hub.subscribe()
        readable = None if everything else caller.may_read
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            hub.stream(queue, readable=readable), media_type="text/event-stream", headers=headers
        )

    return router


def _check(caller: Caller) -> bool:
    """Whether the caller reads every model; `PermissionDenied` unless it reads some."""
    return caller.need_somewhere(Role.READER).reads_everything()
