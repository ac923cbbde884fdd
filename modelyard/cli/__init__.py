"""The `modelyard` command line: a thin adapter over the core packages."""

from __future__ import annotations

from modelyard.cli._app import app, main

__all__ = ["app", "main"]
