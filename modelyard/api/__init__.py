"""The HTTP API: `create_app(settings)` builds the registry server."""

from __future__ import annotations

from modelyard.api._app import create_app

__all__ = ["create_app"]
