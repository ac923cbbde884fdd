"""The Monitoring pages: `/monitoring` (the versions with served traffic: how much, the drift
now, the alert state), `/monitoring/{name}` (drift, per-column drift and performance over time,
the alert rules and what they did) and `/monitoring/{name}/report` (the full HTML report of the
latest window).

They read what `modelyard serve --log-sample --alerts` writes: the prediction log and the
feedback (the registry's `PredictionStore`: its database on PostgreSQL, else the home), the alert
history; reading a model's traffic needs the reader role on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from modelyard.errors import InvalidInput, ModelyardError, NotFound
from modelyard.monitoring import (
    Activity,
    PredictionStore,
    Profile,
    Timeline,
    drift_timeline,
    monitor_window,
    read_alert_history,
    read_alert_rules,
    read_reference,
    render_html,
    window_edges,
)
from modelyard.security import Role
from modelyard.ui import _monitoring_views as views
from modelyard.ui._pages import Pages
from modelyard.ui._viewer import Viewer

REPORT_POLICY = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The report is HTML made from logged data: no script, no fetch, no same origin."""

MAX_LISTED = 200
"""The most versions the list shows (each costs a read of its last hour)."""

MAX_REPORT_WINDOW = timedelta(days=7)
"""The longest window the full report reads (it parses every record in it)."""


@dataclass(frozen=True, slots=True)
class ServedRow:
    """One served version in the list."""

    model: str
    version: str
    activity: Activity
    drift: float | None
    alerts: str


def add_routes(router: APIRouter, pages: Pages) -> None:
    """Add `GET /monitoring`, `/monitoring/{name}` and `/monitoring/{name}/report`."""
    home = pages.settings.home
    recent = views.RecentDrift()  # finished windows' drift, for the next view
    signed_in = Depends(pages.viewer)

    def reference(viewer: Viewer, name: str, version: str) -> tuple[Profile, Profile]:
        found = viewer.registry.get_version(f"{name}:{version}")
        profiles = read_reference(pages.yard.model_folder(found))
        if profiles is None:
            raise NotFound(f"{name}:{version} has no reference profile to compare traffic with")
        return profiles

    def timeline(viewer: Viewer, name: str, version: str, edges: list[datetime]) -> Timeline:
        return drift_timeline(model=name, version=int(version),
                              reference=reference(viewer, name, version),
                              store=pages.yard.prediction_store(), edges=edges,
                              cache=recent)  # fmt: skip

    def current_drift(viewer: Viewer, name: str, version: str, now: datetime) -> float | None:
        try:
            last = timeline(viewer, name, version, [now - timedelta(hours=1), now]).windows[-1]
        except ModelyardError:
            return None
        return last.inputs.share if last.inputs else None

    @router.get("/monitoring")
    @pages.page
    def monitoring(request: Request, viewer: Viewer = signed_in) -> Response:
        """Every served version the viewer may read."""
        viewer.need_somewhere(Role.READER)
        now = datetime.now(UTC)
        store = pages.yard.prediction_store()  # the database's log on PostgreSQL
        served = [(m, v) for m, v in store.served_versions() if v.isdigit()]
        readable = [(m, v) for m, v in served if viewer.may(Role.READER, m)]
        states = {m: views.overall(views.rule_states(read_alert_history(home, m, limit=100).events))
                  for m in {m for m, _ in readable}}  # fmt: skip
        rows = [
            ServedRow(m, v, store.activity(m, v, now=now),
                      current_drift(viewer, m, v, now), states[m])
            for m, v in readable[:MAX_LISTED]
        ]  # fmt: skip
        return pages.render(request, "monitoring.html", viewer=viewer, rows=rows,
                            more=len(readable) - len(rows))  # fmt: skip

    @router.get("/monitoring/{name}")
    @pages.page
    def model(
        request: Request,
        name: str,
        version: str = "",
        window: str = "1h",
        span: str = "24h",
        viewer: Viewer = signed_in,
    ) -> Response:
        """A served model's drift and performance over time, and its alerts."""
        viewer.need(Role.READER, name)
        viewer.registry.get_model(name)  # a 404 for a model that does not exist
        length, count = views.parse_span(window, span)
        versions = served_version_numbers(pages.yard.prediction_store(), name)
        shown = chosen(version, versions)
        context: dict[str, Any] = {"name": name, "versions": versions, "version": shown,
                                   "window": window, "span": span}  # fmt: skip
        if shown is not None:
            context.update(
                charts(
                    timeline(viewer, name, shown, window_edges(datetime.now(UTC), length, count))
                )
            )
        history = read_alert_history(home, name, limit=200)
        moves = [m for m in viewer.registry.alias_history(name) if m.reason.startswith("alert ")]
        return pages.render(
            request, "monitoring_model.html", viewer=viewer, rules=read_alert_rules(home, name),
            events=history.events, damaged_events=history.damaged, moves=moves[:100],
            states=views.rule_states(history.events), **context,
        )  # fmt: skip

    @router.get("/monitoring/{name}/report")
    @pages.page
    def report(
        request: Request,
        name: str,
        version: str = "",
        window: str = "1h",
        viewer: Viewer = signed_in,
    ) -> Response:
        """The full HTML report (a plot per column) of the last `window` of a version."""
        viewer.need(Role.READER, name)
        length, _ = views.parse_span(window, window)
        if length > MAX_REPORT_WINDOW:
            raise InvalidInput(f"window {window!r} is longer than the 7 days a report reads")
        store = pages.yard.prediction_store()
        shown = chosen(version, served_version_numbers(store, name))
        if shown is None:
            raise NotFound(f"{name} has no served traffic to report on")
        found = viewer.registry.get_version(f"{name}:{shown}")
        result, reference_inputs, current = monitor_window(
            model=name, version=found.number, folder=pages.yard.model_folder(found),
            window=length, store=store,
        )  # fmt: skip
        page = render_html(result, reference_inputs, current)
        return HTMLResponse(page, headers={"content-security-policy": REPORT_POLICY})


def served_version_numbers(store: PredictionStore, name: str) -> list[str]:
    """The versions of `name` with a prediction log, newest first."""
    found = [v for m, v in store.served_versions() if m == name and v.isdigit()]
    return sorted(found, key=int, reverse=True)


def chosen(version: str, versions: list[str]) -> str | None:
    """The version asked for (it must have traffic), else the newest with traffic."""
    if not version:
        return versions[0] if versions else None
    if version not in versions:
        served = f" (served: {', '.join(versions)})" if versions else ""
        raise NotFound(f"version {version!r} has no served traffic{served}")
    return version


def charts(timeline: Timeline) -> dict[str, Any]:
    """The model page's charts and heat table for `timeline`."""
    windows = timeline.windows
    columns = list(views.column_scores(windows))
    return {
        "timeline": timeline,
        "drift_chart": views.drift_chart(windows),
        "column_chart": views.column_chart(windows, columns) if columns else None,
        "performance_chart": views.performance_chart(windows),
        "heat": views.heat_table(windows),
        "latest": windows[-1],
    }
