"""`mount_ui`: the web UI's routes and static files, added to the registry server's app."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from modelyard._yard import Yard
from modelyard.settings import Settings
from modelyard.ui import _audit, _login, _models, _monitoring, _runs, _version
from modelyard.ui._headers import SecurityHeaders
from modelyard.ui._pages import Pages
from modelyard.ui._viewer import Gatekeeper

STATIC_PREFIX = "/ui/static"
"""Where the stylesheets and scripts are served (public: they hold no data)."""

ACTION_PREFIX = "/ui/"
"""Where every form posts (`/ui/login`, `/ui/models/fraud/alias`, …): one prefix, so the server
can hold their bodies to `MAX_FORM_BYTES`."""

PAGE_PREFIXES = ("/models", "/version", "/diff", "/runs", "/monitoring", "/audit", "/login",
                 "/ui")  # fmt: skip
"""Where the pages live, besides `/` itself."""


def is_ui_path(path: str) -> bool:
    """Whether the UI answers `path`: with auth on, it signs a browser in itself (a session
    cookie, else a redirect to /login) instead of answering 401."""
    return path == "/" or any(
        path == prefix or path.startswith(prefix + "/") for prefix in PAGE_PREFIXES
    )


def mount_ui(app: FastAPI, *, yard: Yard, gatekeeper: Gatekeeper, settings: Settings) -> None:
    """Add the pages (at `/`, `/models/…`, `/runs`, …) and their static files to `app`."""
    pages = Pages(yard=yard, gatekeeper=gatekeeper, settings=settings, static_url=STATIC_PREFIX)
    router = APIRouter(include_in_schema=False)
    for module in (_login, _models, _version, _runs, _monitoring, _audit):
        module.add_routes(router, pages)
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(packages=[("modelyard.ui", "static")]), name="ui-static")
    app.add_middleware(SecurityHeaders, applies=is_ui_path, static=STATIC_PREFIX)
