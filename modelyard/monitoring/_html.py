"""A drift report as one self-contained HTML page: a table and, per column, the reference and
the window drawn over each other (inline SVG; no scripts, no files beside it)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from modelyard.monitoring._columns import CategoricalColumn, NumericColumn
from modelyard.monitoring._drift import DriftReport
from modelyard.monitoring._profile import Profile
from modelyard.monitoring._reports import MonitorReport

_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd}
.drift{color:#b00;font-weight:600}.plots{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0}figcaption{font-size:12px}.ref{fill:#8aa9c9}.cur{fill:#e07b39;opacity:.65}
"""


def render_html(
    report: MonitorReport, reference: Profile | None = None, window: Profile | None = None
) -> str:
    """The page for `report`; with the profiles, one plot per input column."""
    title = (f"{report.model}:{report.version} drift, {report.since:%Y-%m-%d %H:%M} to "
             f"{report.until:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style><h1>{html.escape(title)}</h1>",
             f"<p>{report.requests} requests, {report.rows} rows.</p>"]  # fmt: skip
    if report.performance is not None:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in report.performance.metrics.items())
        parts.append(f"<p>Performance on {report.performance.rows} labelled rows: {metrics}</p>")
    if report.estimated_accuracy is not None:
        parts.append(f"<p>Estimated accuracy (confidence): {report.estimated_accuracy:.4g}</p>")
    for name, drift in (("Inputs", report.inputs), ("Predictions", report.predictions)):
        if drift is not None:
            parts.append(_table(name, drift))
    if reference is not None and window is not None:
        parts.append("<h2>Columns: reference (blue) and window (orange)</h2><div class=plots>")
        for name in reference.columns:
            if name in window.columns:
                parts.append(_plot(name, reference.columns[name], window.columns[name]))
        parts.append("</div>")
    return "\n".join(parts)


def _table(title: str, drift: DriftReport) -> str:
    rows = "".join(
        f"<tr class={'drift' if c.drifted else 'ok'}><td>{html.escape(c.column)}</td>"
        f"<td>{c.test}</td><td>{c.score:.4g}</td>"
        f"<td>{'-' if c.p_value is None else f'{c.p_value:.3g}'}</td><td>{c.threshold}</td>"
        f"<td>{'yes' if c.drifted else ''}</td></tr>"
        for c in drift.columns
    )
    return (f"<h2>{title}: {html.escape(drift.verdict())}</h2><table><tr><th>column"
            f"<th>test<th>score<th>p-value<th>threshold<th>drift</tr>{rows}</table>")  # fmt: skip


def _plot(name: str, reference: object, window: object) -> str:
    if isinstance(reference, NumericColumn) and isinstance(window, NumericColumn):
        bars = _bars(reference.histogram.counts, window.histogram.counts)
    elif isinstance(reference, CategoricalColumn) and isinstance(window, CategoricalColumn):
        labels = sorted(set(reference.frequencies) | set(window.frequencies))[:30]
        bars = _bars([reference.frequencies.get(k, 0) for k in labels],
                     [window.frequencies.get(k, 0) for k in labels])  # fmt: skip
    else:
        return ""
    return f"<figure>{bars}<figcaption>{html.escape(name)}</figcaption></figure>"


def _bars(reference: Sequence[int] | np.ndarray, window: Sequence[int] | np.ndarray) -> str:
    width, height = 240, 90
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(window, dtype=float)
    ref, cur = ref / max(ref.sum(), 1), cur / max(cur.sum(), 1)  # shares: windows differ in size
    top = max(float(ref.max(initial=0)), float(cur.max(initial=0)), 1e-9)
    step = width / max(len(ref), 1)
    rects = []
    for index, (a, b) in enumerate(zip(ref, cur, strict=True)):
        x = index * step
        for css, value, offset in (("ref", a, 0.0), ("cur", b, step / 2)):
            h = height * value / top
            rects.append(f'<rect class={css} x="{x + offset:.1f}" y="{height - h:.1f}" '
                         f'width="{max(step / 2 - 1, 1):.1f}" height="{h:.1f}"/>')  # fmt: skip
    return f'<svg width="{width}" height="{height}" role="img">{"".join(rects)}</svg>'
