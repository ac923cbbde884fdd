"""`GET /metrics` of the registry server (`modelyard server`): requests by route template,
method and status code, latency by route template, requests in flight, and the process's CPU,
memory and open files, in the Prometheus text format.

Labels come from the app's route table, never from the raw path: `/api/v1/models/fraud` is
counted under `/api/v1/models/{name}`, a path no route matches under `UNMATCHED`, and a method
outside the HTTP set under `OTHER`, so no client can add series without end.

With `PROMETHEUS_MULTIPROC_DIR` set (several worker processes behind one port, as
`modelyard serve --workers` sets it: `modelyard.api._workers`), every worker writes its counts
there and `/metrics` adds them up, whichever worker answers the scrape; the process series are
then left out (they would describe only the worker that answered).

Like the inference server's, `/metrics` needs no token when auth is on: Prometheus carries none,
and the series hold no model names, users or tokens.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.api._workers import METRICS

PATH = "/metrics"

UNMATCHED = "<unmatched>"
"""The route label of every request whose path no route matches (a 404 of the router)."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "OTHER"
"""The method label of any method outside `METHODS`."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RegistryMetrics:
    """The metrics of one registry server process, in a registry of its own (tests run many).
    `folder`: where the worker processes write their counts (default: `PROMETHEUS_MULTIPROC_DIR`,
    which prometheus_client itself reads; none: one process)."""

    def __init__(self, *, folder: str | None = None) -> None:
        self.folder = folder if folder is not None else os.environ.get(METRICS) or None
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelyard_server_requests", "Registry server requests answered, by route template, "
            "method and status code.", ["route", "method", "code"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "modelyard_server_request_seconds", "Registry server time from request to response, "
            "in seconds, by route template.", ["route"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "modelyard_server_requests_in_flight", "Registry server requests being answered.",
            registry=self.registry, multiprocess_mode="livesum",
        )  # fmt: skip
        if self.folder is None:
            ProcessCollector(registry=self.registry)

    def observe(self, route: str, method: str, code: int, seconds: float) -> None:
        """Count one answered request."""
        key = (route, method if method in METHODS else OTHER, code)
        series = self._series.get(key)
        if series is None:  # `labels()` looks its child up under a lock: once per series here
            series = (self.requests.labels(key[0], key[1], str(code)), self.latency.labels(route))
            self._series[key] = series  # bounded: routes, methods and codes are
        series[0].inc()
        series[1].observe(seconds)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes (every worker's counts, with several)."""
        if self.folder is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=self.folder)  # type: ignore[no-untyped-call]
        return generate_latest(combined)


class MeasureRequests:
    """ASGI middleware, outermost: answers `GET /metrics` and counts every other request
    (refused ones too) under the first of `templates` (path templates, read at the first
    request, once every route is declared) that its path matches."""

    def __init__(
        self, app: ASGIApp, *, metrics: RegistryMetrics, templates: Callable[[], Iterable[str]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if scope["path"] == PATH and scope["method"] in ("GET", "HEAD"):
            await _send_metrics(send, self.metrics.exposition(), head=scope["method"] == "HEAD")
            self.metrics.observe(PATH, scope["method"], 200, time.perf_counter() - started)
            return
        status = 500  # the app failed before answering
        metrics = self.metrics

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            metrics.in_flight.dec()
            metrics.observe(self.template(scope["path"]), scope["method"], status,
                            time.perf_counter() - started)  # fmt: skip

    def template(self, path: str) -> str:
        """The template `path` matches (whatever its method), else `UNMATCHED`."""
        if self._patterns is None:
            # literal paths first: /versions/search before /versions/{id}
            ordered = sorted(dict.fromkeys(self.templates()), key=lambda t: t.count("{"))
            self._patterns = [(compile_path(t)[0], t) for t in ordered]
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return UNMATCHED


def route_templates(app: FastAPI) -> list[str]:
    """Every path template of `app`: those its OpenAPI document describes, and the routes and
    mounts declared on the app itself (the web UI, the API reference)."""
    templates = list(app.openapi().get("paths", {}))
    for route in app.router.routes:
        path = getattr(route, "path", None)
        if isinstance(path, str) and path:
            templates.append(f"{path}/{{path:path}}" if isinstance(route, Mount) else path)
    return templates


async def _send_metrics(send: Send, body: bytes, *, head: bool) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", CONTENT_TYPE_LATEST.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": b"" if head else body})
