"""Monitoring routes of the registry server: serving replicas send their prediction log and
feedback here (the editor role on the model), and clients ask for reports (the reader role), so
`Yard(url=…).monitor` reads what every replica logged.

The log lands in the server's `PredictionStore`: the registry's database on PostgreSQL (shared
by every server on it), else the server's home. Bodies are untrusted: a batch is checked whole
(`parse_prediction_batch`) before any of it is stored, and the server's body limit applies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from modelyard._yard import Yard
from modelyard.api._acting import Caller
from modelyard.errors import InvalidInput
from modelyard.monitoring import (
    monitor_window,
    parse_feedback,
    parse_prediction_batch,
    render_html,
)
from modelyard.security import Role

REPORT_POLICY = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The report page is HTML made from logged data: no script, no fetch, no same origin."""

MAX_WINDOW = timedelta(days=31)
"""The longest window a report reads (it parses every record in it)."""

Ref = Annotated[str, Query(description="fraud@production, fraud:3, …")]


def monitoring_routes(yard: Yard, acting: Any) -> APIRouter:
    """`POST /models/{name}/predictions`, `POST /models/{name}/feedback` and `GET /monitor`."""
    router = APIRouter(tags=["monitoring"])

    def store_batch(caller: Caller, name: str, body: bytes) -> None:
        caller.need(Role.EDITOR, name)
        records, replica = parse_prediction_batch(body, model=name)
        latest = caller.registry.get_model(name).latest_version  # a 404 for an unknown model
        for record in records:
            if not 1 <= int(record["version"]) <= latest:
                raise InvalidInput(f"{name} has no version {record['version']}")
        yard.prediction_store().write(records, replica=replica or None)

    def store_feedback(caller: Caller, name: str, body: bytes) -> None:
        caller.need(Role.EDITOR, name)
        records = parse_feedback(body)
        caller.registry.get_model(name)
        yard.prediction_store().write_feedback(name, records)

    @router.post("/models/{name}/predictions", status_code=204)
    async def log_predictions(name: str, request: Request, caller: Caller = acting) -> Response:
        """Store a batch of prediction records logged by a serving replica:
        `{"replica": "host:pid", "records": [{"id", "model", "version", "time", "latency_ms",
        "inputs", "outputs"}, …]}`."""
        await run_in_threadpool(store_batch, caller, name, await request.body())
        return Response(status_code=204)

    @router.post("/models/{name}/feedback", status_code=204)
    async def log_feedback(name: str, request: Request, caller: Caller = acting) -> Response:
        """Store the true labels of answered requests: `{"id", "label"}` or
        `{"feedback": [...]}`, as the inference server's feedback route takes them."""
        await run_in_threadpool(store_feedback, caller, name, await request.body())
        return Response(status_code=204)

    @router.get("/monitor")
    def monitor(
        ref: Ref,
        window_seconds: Annotated[float, Query(gt=0)] = 3600.0,
        until: datetime | None = None,
        format: Annotated[str, Query(pattern="^(json|html)$")] = "json",
        segment: Annotated[str | None, Query(max_length=1000)] = None,
        domain_classifier: bool = False,
        caller: Caller = acting,
    ) -> Response:
        """The monitoring report (drift, performance) of a version's last `window_seconds`
        before `until` (now), over every replica's log; `format=html` for the page; `segment`
        (an input column) adds drift and performance per value of that column;
        `domain_classifier=true` adds the (slower) domain classifier to the multivariate test."""
        caller.need_ref(Role.READER, ref)
        window = timedelta(seconds=window_seconds)
        if window > MAX_WINDOW:
            raise InvalidInput(f"a report reads at most {MAX_WINDOW.days} days")
        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        version = caller.registry.get_version(ref)
        report, reference, current = monitor_window(
            model=version.name, version=version.number, folder=yard.model_folder(version),
            window=window, until=until, store=yard.prediction_store(), segment=segment,
            domain_classifier=domain_classifier,
        )  # fmt: skip
        if format == "html":
            return Response(render_html(report, reference, current), media_type="text/html",
                            headers={"content-security-policy": REPORT_POLICY})  # fmt: skip
        return Response(report.model_dump_json(), media_type="application/json")

    return router
