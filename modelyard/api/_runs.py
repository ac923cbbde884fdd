"""Run routes: create, log params, metrics, datasets and artifacts, end, read."""

from __future__ import annotations

from fastapi import APIRouter, Response

from modelyard._yard import Yard
from modelyard.api import _schemas as body
from modelyard.api._acting import User, acting_registry
from modelyard.api._responses import fast_json
from modelyard.registry import MetricPoint, Registry, Run


def run_routes(yard: Yard) -> APIRouter:
    """Routes for runs over `yard`'s registry."""
    router = APIRouter(tags=["runs"])

    def registry(user: str | None) -> Registry:
        return acting_registry(yard, user)

    @router.post("/runs", status_code=201)
    @fast_json(201)
    def create_run(new: body.RunCreate, user: User = None) -> Run:
        return registry(user).create_run(**new.model_dump())

    @router.get("/runs/{run_id}")
    @fast_json()
    def get_run(run_id: str, user: User = None) -> Run:
        return registry(user).get_run(run_id)

    @router.post("/runs/{run_id}/params", status_code=204)
    def log_params(run_id: str, values: body.Values, user: User = None) -> Response:
        registry(user).log_params(run_id, values.values)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/datasets", status_code=204)
    def log_datasets(run_id: str, values: body.Values, user: User = None) -> Response:
        registry(user).log_datasets(run_id, values.values)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/metrics", status_code=204)
    def log_metrics(run_id: str, logged: body.MetricsLog, user: User = None) -> Response:
        registry(user).log_metrics(run_id, logged.metrics, step=logged.step)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/artifacts", status_code=204)
    def log_artifact(run_id: str, artifact: body.Artifact, user: User = None) -> Response:
        registry(user).log_artifact(run_id, artifact.name, artifact.manifest_digest)
        return Response(status_code=204)

    @router.post("/runs/{run_id}/end")
    @fast_json()
    def end_run(run_id: str, end: body.RunEnd, user: User = None) -> Run:
        return registry(user).end_run(run_id, end.status)

    @router.get("/runs/{run_id}/metrics/{key}")
    @fast_json()
    def metric_history(run_id: str, key: str, user: User = None) -> list[MetricPoint]:
        return registry(user).metric_history(run_id, key)

    return router
