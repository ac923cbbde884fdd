"""(placeholder: filled in by its page's work)"""

from __future__ import annotations

from fastapi import APIRouter

from modelyard.ui._pages import Pages


def add_routes(router: APIRouter, pages: Pages) -> None:
    """Add this module's pages to `router`."""
