"""A drift report as one self-contained HTML page: a table and, per column, the reference and
the window drawn over each other (inline SVG; no scripts, no files beside it)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from modelyard.monitoring._columns import CategoricalColumn, NumericColumn
from modelyard.monitoring._drift import DriftReport
from modelyard.monitoring._embeddings import EmbeddingDrift
from modelyard.monitoring._multivariate import MultivariateDrift
from modelyard.monitoring._profile import Profile
from modelyard.monitoring._quality import QualityReport
from modelyard.monitoring._reports import MonitorReport
from modelyard.monitoring._segments import SegmentReport
from modelyard.monitoring._text import TextDrift

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
    if report.unreadable_lines:
        parts.append(f"<p class=drift>Skipped {_lines(report.unreadable_lines)} (damaged "
                     "records).</p>")  # fmt: skip
    if report.performance is not None:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in report.performance.metrics.items())
        parts.append(f"<p>Performance on {report.performance.rows} labelled rows: {metrics}</p>")
    if report.estimated_accuracy is not None:
        parts.append(f"<p>Estimated accuracy (confidence): {report.estimated_accuracy:.4g}</p>")
    for name, drift in (("Inputs", report.inputs), ("Predictions", report.predictions)):
        if drift is not None:
            parts.append(_table(name, drift))
    if report.quality is not None:
        parts.append(_quality_table(report.quality))
    if report.segments:
        parts.append(_segment_table(report.segments))
    for name, rows in (("Embeddings (MMD test)", report.embeddings),
                       ("Text (descriptor tests)", report.text)):  # fmt: skip
        if rows:
            parts.append(_sample_table(name, rows))
    if report.multivariate is not None:
        parts.append(_multivariate_table(report.multivariate))
    if reference is not None and window is not None:
        parts.append("<h2>Columns: reference (blue) and window (orange)</h2><div class=plots>")
        for name in reference.columns:
            if name in window.columns:
                parts.append(_plot(name, reference.columns[name], window.columns[name]))
        parts.append("</div>")
    return "\n".join(parts)


def _quality_table(quality: QualityReport) -> str:
    headers, rows = quality.table()
    head = "".join(f"<th>{html.escape(header)}" for header in headers)
    body = "".join(
        "<tr class=drift>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    table = f"<table><tr>{head}</tr>{body}</table>" if rows else ""
    return f"<h2>Data quality: {html.escape(quality.verdict())}</h2>{table}"


def _sample_table(title: str, drifts: Sequence[EmbeddingDrift | TextDrift]) -> str:
    rows = "".join(
        f"<tr class={'drift' if d.drifted else 'ok'}>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in d.cells())
        + "</tr>"
        for d in drifts
    )
    headers = "".join(f"<th>{html.escape(header)}" for header in drifts[0].HEADERS)
    return f"<h2>{title}</h2><table><tr>{headers}</tr>{rows}</table>"


def _multivariate_table(drift: MultivariateDrift) -> str:
    headers, rows = drift.table()
    head = "".join(f"<th>{html.escape(header)}" for header in headers)
    body = "".join(
        f"<tr class={'drift' if row[-1] else 'ok'}>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
        + "</tr>"
        for row in rows
    )
    title = f"Multivariate (joint distribution): {html.escape(drift.verdict())}"
    return f"<h2>{title}</h2><table><tr>{head}</tr>{body}</table>"


def _lines(count: int) -> str:
    return f"{count} unreadable log line{'' if count == 1 else 's'}"


def _segment_table(segments: Sequence[SegmentReport]) -> str:
    rows = "".join(
        f"<tr class={'drift' if s.drifted else 'ok'}>"
        + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in s.summary())
        + "</tr>"
        for s in segments
    )
    headers = "".join(f"<th>{header}" for header in SegmentReport.HEADERS)
    return (f"<h2>Segments by {html.escape(segments[0].column)}, each against the whole "
            f"reference</h2><table><tr>{headers}</tr>{rows}</table>")  # fmt: skip


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
