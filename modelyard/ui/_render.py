"""Templates: one Jinja2 environment (autoescaped: every name, tag and description is data
anyone who can register may have written), and the filters pages share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from modelyard.__about__ import __version__

_UNITS = ("B", "KB", "MB", "GB", "TB")


def size(value: int | float | None) -> str:
    """`1536` → `1.5 KB`."""
    if value is None:
        return ""
    amount = float(value)
    for unit in _UNITS:
        if abs(amount) < 1000 or unit == _UNITS[-1]:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} TB"  # pragma: no cover - the loop returns at its last unit


def number(value: Any, digits: int = 4) -> str:
    """A metric as people read it: `0.93125`, `1.2e-05`, `12,345`; text as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.{digits}g}"


def when(value: datetime | None) -> str:
    """A timestamp in UTC, to the second: `2026-12-02 20:53:17`."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


class Renderer:
    """Renders the package's templates into HTML responses."""

    def __init__(self, *, static_url: str) -> None:
        self.environment = jinja2.Environment(
            loader=jinja2.PackageLoader("modelyard.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,  # a misspelt name fails the page's test
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.filters.update(size=size, number=number, when=when)
        self.environment.globals.update(static=static_url, version=__version__)

    def page(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        """The response holding `template` rendered with `context` (and `request`)."""
        text = self.environment.get_template(template).render(request=request, **context)
        return HTMLResponse(text, status_code=status_code)
