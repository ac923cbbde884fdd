"""A synchronous httpx transport that calls an ASGI app in-process (no sockets, no threads of
the app's own): the middle tier of the tests, between unit tests and a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
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


@asynccontextmanager
async def serving(yard: Any, *refs: str, **routing: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client over the inference app for `refs`, its models loaded (the lifespan's
    startup run) and closed again when the block ends."""
    from modelyard.api import create_inference_app

    app = create_inference_app(yard.settings, list(refs), yard=yard, **routing)
    assert app.on_startup is not None and app.on_shutdown is not None
    await app.on_startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            yield client
    finally:
        await app.on_shutdown()
