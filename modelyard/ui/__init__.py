"""The web UI: server-rendered pages over the registry, mounted at `/` by the registry server.

Pages read through the same `Registry` (and the same role checks and audit) as the REST API;
templates and the vendored scripts (htmx, uPlot, their licences beside them) ship in the wheel,
so the UI works offline. `modelyard ui` starts it over the local home.

>>> mount_ui(app, yard=yard, gatekeeper=access, settings=settings)
"""

from __future__ import annotations

from modelyard.ui._app import ACTION_PREFIX, STATIC_PREFIX, is_ui_path, mount_ui
from modelyard.ui._pages import MAX_FORM_BYTES
from modelyard.ui._viewer import Gatekeeper, Viewer

__all__ = [
    "ACTION_PREFIX",
    "Gatekeeper",
    "MAX_FORM_BYTES",
    "STATIC_PREFIX",
    "Viewer",
    "is_ui_path",
    "mount_ui",
]
