"""Run routes: create, log params, metrics, datasets and artifacts, end, read, search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from modelyard.api import _schemas as body
from modelyard.api._acting import Caller
from modelyard.api._responses import fast_json
from modelyard.registry import MetricPoint, Registry, Run
from modelyard.security import Role


def run_routes(acting: Any) -> APIRouter:
    """Routes for runs. Runs belong to no single model: writing needs
    the editor role on some model, reading the reader role."""
    router = APIRouter(tags=["runs"])

    def writer(caller: Caller) -> Registry:
        return caller.need_somewhere(Role.EDITOR).registry

    def reader(caller: Caller) -> Registry:
        return caller.need_somewhere(Role.READER).registry

    @router.post("/runs", status_code=201)
    @fast_json(201)
    def create_run(new: body.RunCreate, caller: Caller = acting) -> Run:
        return writer(caller).create_run(**new.model_dump())

    @router.get("/runs")
    @fast_json()
    def search_runs(
        q: Annotated[str | None, Query(description="a filter: metrics.loss < 0.3 and …")] = None,
        order_by: Annotated[str | None, Query(description="e.g. 'metrics.loss, started'")] = None,
        limit: Annotated[int, Query(description="the most runs returned")] = 100,
        caller: Caller = acting,
    ) -> list[Run]:
        return reader(caller).search_runs(q, order_by=order_by, limit=limit)

    @router.get("/runs/{run_id}")
    @fast_json()
    def get_run(run_id: str, caller: Caller = acting) -> Run:
        return reader(caller).get_run(run_id)

    @router.post("/runs/{run_id}/params", status_code=204)
    def log_params(run_id: str, values: body.Values, caller: Caller = acting) -> Response:
        writer(caller).log_params(run_id, values.values)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/datasets", status_code=204)
    def log_datasets(run_id: str, values: body.Values, caller: Caller = acting) -> Response:
        writer(caller).log_datasets(run_id, values.values)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/metrics", status_code=204)
    def log_metrics(run_id: str, logged: body.MetricsLog, caller: Caller = acting) -> Response:
        writer(caller).log_metrics(run_id, logged.metrics, step=logged.step)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/artifacts", status_code=204)
    def log_artifact(run_id: str, artifact: body.Artifact, caller: Caller = acting) -> Response:
        writer(caller).log_artifact(run_id, artifact.name, artifact.manifest_digest)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/end")
    @fast_json()
    def end_run(run_id: str, end: body.RunEnd, caller: Caller = acting) -> Run:
        return writer(caller).end_run(run_id, end.status)

    @router.get("/runs/{run_id}/metrics/{key}")
    @fast_json()
    def metric_history(run_id: str, key: str, caller: Caller = acting) -> list[MetricPoint]:
        return reader(caller).metric_history(run_id, key)

    return router
