"""A synchronous httpx transport that calls an ASGI app in-process (no sockets, no threads of
the app's own): the middle tier of the tests, between unit tests and a real server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.from_thread
import httpx


class InProcessTransport(httpx.BaseTransport):
    """Sends each request to `app` on an event loop running in a helper thread."""

    def __init__(self, app: Any, portal: anyio.from_thread.BlockingPortal) -> None:
        self.transport = httpx.ASGITransport(app=app)
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self.transport.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self.portal.call(call)


@contextmanager
def in_process_client(app: Any) -> Iterator[httpx.Client]:
    """An httpx client wired to `app`; the app's resources are released afterwards."""
    with anyio.from_thread.start_blocking_portal() as portal:
        with httpx.Client(transport=InProcessTransport(app, portal)) as client:
            yield client
    app.state.yard.close()
