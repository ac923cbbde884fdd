"""Small HTML pieces for Jupyter's `_repr_html_`: a card with a title, tables and inline bars.

Everything shown comes from records whose names, tags, params and descriptions anyone who can
register may write, so every value passes through `html.escape` unless it is a `Raw` fragment
built here. The output is self-contained (inline CSS, no script, no external asset) and uses
`inherit`ed text colours and translucent fills, so it reads in light and dark notebook themes.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

MAX_ROWS = 50
"""The most rows one table shows; the rest are counted in a last line."""

_BORDER = "1px solid rgba(127,127,127,.35)"
_CARD = (
    f"font-family:system-ui,sans-serif;font-size:13px;border:{_BORDER};border-radius:6px;"
    "padding:8px 12px;margin:4px 0;max-width:860px;color:inherit;background:transparent"
)
_CELL = f"padding:2px 8px;border-bottom:{_BORDER};text-align:left;vertical-align:top"
_MARKED = "background:rgba(220,50,47,.18)"
_MUTED = "opacity:.7"


class Raw(str):
    """A fragment already made safe here (a bar, a nested table): not escaped again."""

    __slots__ = ()


def escape(value: object) -> str:
    """`value` as text safe inside an element or a quoted attribute."""
    return value if isinstance(value, Raw) else html.escape(str(value), quote=True)


def card(title: str, *parts: str, note: str = "") -> str:
    """A bordered box: a bold `title`, a muted `note` beside it, then `parts` (already HTML)."""
    heading = f"<b>{escape(title)}</b>"
    if note:
        heading += f" <span style='{_MUTED}'>{escape(note)}</span>"
    return f"<div style='{_CARD}'><div>{heading}</div>{''.join(parts)}</div>"


def section(title: str, body: str) -> str:
    """A small heading over `body`; nothing at all when `body` is empty."""
    if not body:
        return ""
    return f"<div style='margin-top:6px'><i style='{_MUTED}'>{escape(title)}</i>{body}</div>"


def table(
    headers: Sequence[str] | None,
    rows: Iterable[Sequence[object]],
    *,
    marked: Iterable[int] = (),
) -> str:
    """A compact table; rows whose index is in `marked` are highlighted. Empty without rows."""
    shown = list(rows)
    if not shown:
        return ""
    flagged = set(marked)
    head = ""
    if headers:
        head = "<tr>" + "".join(f"<th style='{_CELL}'>{escape(h)}</th>" for h in headers) + "</tr>"
    lines = []
    for index, row in enumerate(shown[:MAX_ROWS]):
        style = f" style='{_MARKED}'" if index in flagged else ""
        cells = "".join(f"<td style='{_CELL}'>{escape(cell)}</td>" for cell in row)
        lines.append(f"<tr{style}>{cells}</tr>")
    if len(shown) > MAX_ROWS:
        span = len(shown[0])
        more = f"… and {len(shown) - MAX_ROWS} more"
        lines.append(f"<tr><td colspan='{span}' style='{_CELL};{_MUTED}'>{more}</td></tr>")
    body = "".join(lines)
    return f"<table style='border-collapse:collapse;margin:2px 0'>{head}{body}</table>"


def pairs(values: Mapping[str, object]) -> str:
    """A two-column table of keys and values, in key order."""
    return table(None, sorted(values.items()))


def bar(value: float, largest: float) -> Raw:
    """A horizontal bar as wide as `value` is against `largest` (blue up, red down)."""
    share = 0.0 if largest <= 0 else min(abs(value) / largest, 1.0)
    colour = "rgba(38,139,210,.75)" if value >= 0 else "rgba(220,50,47,.75)"
    return Raw(
        f"<span style='display:inline-block;height:9px;width:{share * 120:.1f}px;"
        f"background:{colour};border-radius:2px'></span>"
    )


def signature(spec: Mapping[str, object] | None) -> str:
    """The inputs and outputs of a signature (as stored: lists of name, datatype, shape)."""
    rows = []
    for direction in ("inputs", "outputs"):
        entries = (spec or {}).get(direction)
        for entry in entries if isinstance(entries, list) else []:
            item = entry if isinstance(entry, dict) else {}
            shape = item.get("shape")
            dims = "×".join(str(d) for d in shape) if isinstance(shape, list) else "?"
            rows.append((direction[:-1], item.get("name", "?"), item.get("datatype", "?"), dims))
    return table(["", "name", "datatype", "shape"], rows)
