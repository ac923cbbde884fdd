"""`create_app(settings)`: the registry REST API, one FastAPI app over one `Yard`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from modelyard.__about__ import __version__
from modelyard._yard import Yard
from modelyard._yard_events import YardAliasEvents
from modelyard._yard_signing import signature_problem
from modelyard.api._access import Access
from modelyard.api._acting import caller_dependency
from modelyard.api._allow import method_not_allowed
from modelyard.api._authenticate_first import AuthenticateFirst
from modelyard.api._blobs import MAX_BLOB, blob_routes
from modelyard.api._events import EventHub, event_routes
from modelyard.api._hot_routes import HotRoutes
from modelyard.api._lease_routes import lease_routes
from modelyard.api._limits import RequestLimits
from modelyard.api._monitoring_routes import monitoring_routes
from modelyard.api._principals import principal_routes
from modelyard.api._registry import registry_routes
from modelyard.api._registry_metrics import (
    MeasureRequests,
    RegistryMetrics,
    route_templates,
)
from modelyard.api._responses import error_response
from modelyard.api._runs import run_routes
from modelyard.api._webhooks import WebhookDispatcher, webhook_routes
from modelyard.errors import ConfigurationError, ModelyardError
from modelyard.settings import Settings
from modelyard.ui import ACTION_PREFIX, MAX_FORM_BYTES, is_ui_path, mount_ui

API = "/api/v1"


def create_app(settings: Settings, *, yard: Yard | None = None) -> FastAPI:
    """The registry server: REST under `/api/v1`, OpenAPI at `/openapi.json`.

    >>> app = create_app(Settings())
    >>> uvicorn.run(app, host="127.0.0.1", port=8080)
    """
    client = yard or Yard(settings)
    hub = EventHub(YardAliasEvents(client))  # alias moves for followers; starts when asked

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        client.open()  # connect (and for SQLite, migrate) before the first request
        dispatcher = WebhookDispatcher(lambda: client.local_registry().database)
        if not client.url:  # the registry is this server's own: send its webhooks
            dispatcher.start()
        yield
        await hub.stop()
        dispatcher.stop()
        client.close()

    app = FastAPI(title="modelyard", version=__version__, lifespan=lifespan)
    app.state.yard = client
    app.state.events = hub  # `close()` it when the server drains (streams never end alone)
    app.add_exception_handler(ModelyardError, error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, method_not_allowed)  # type: ignore[arg-type]
    access = Access(settings, lambda: client.local_registry().database, clock=time.monotonic,
                    signatures=lambda version: signature_problem(client, version))  # fmt: skip
    acting = caller_dependency(access)
    routers = (registry_routes(client, access, acting), run_routes(acting),
               blob_routes(client, acting), principal_routes(access, acting),
               webhook_routes(settings, acting), lease_routes(acting),
               event_routes(hub, acting), monitoring_routes(client, acting))  # fmt: skip
    for router in routers:
        app.include_router(router, prefix=API)
    mount_ui(app, yard=client, gatekeeper=access, settings=settings)
    app.add_middleware(HotRoutes, yard=client, access=access, prefix=API)
    app.add_middleware(RequestLimits, max_body_bytes=settings.server_max_body_bytes,
                       read_timeout=settings.server_read_timeout_seconds,
                       body_limits=[("PUT", f"{API}/blobs/", MAX_BLOB),
                                    ("POST", ACTION_PREFIX, MAX_FORM_BYTES)])  # fmt: skip
    open_paths = frozenset({"/health", "/docs/oauth2-redirect"} | {
        path for path in (app.openapi_url, app.docs_url, app.redoc_url) if path})  # fmt: skip
    # The pages sign a browser in themselves (a cookie, else a redirect to /login), and static
    # files hold no data; their forms are small (MAX_FORM_BYTES above).
    app.add_middleware(AuthenticateFirst, access=access, open_paths=open_paths, own_auth=is_ui_path)
    # /metrics needs no token (as on `modelyard serve`), and refused requests are counted too
    app.add_middleware(MeasureRequests, metrics=RegistryMetrics(),
                       templates=lambda: route_templates(app))  # fmt: skip

    @app.get("/health", tags=["server"])
    def health() -> dict[str, str]:
        """Liveness: the server answers."""
        return {"status": "ok", "version": __version__}

    return app


def _validation_error(request: Request, error: RequestValidationError) -> Response:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return error_response(request, ConfigurationError(f"invalid request: {where}: {first['msg']}"))
