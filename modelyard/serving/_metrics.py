"""Prometheus metrics of a serving process: requests, errors by code, latency, batch sizes,
queue depth and loaded versions, per model and version."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Gauges = Callable[[], Iterable[tuple[str, str, int]]]
"""(model, version, queued requests) for every loaded version, read at scrape time."""

UNKNOWN = "<unknown>"
"""The one label value for every model or version a request names that is not served: labels
come from requests only through this bound, so no client can add series without end."""


class Metrics:
    """The metrics of one serving process, in a registry of its own (tests run many)."""

    def __init__(self, *, multiprocess: bool = False) -> None:
        self.multiprocess = multiprocess  # one of several worker processes: add theirs up
        self._answered: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # bounded by the labels
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelyard_requests", "Inference requests answered, by status code.",
            ["model", "version", "code"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "modelyard_request_seconds", "Time from request to response, in seconds.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "modelyard_batch_rows", "Rows in each batched call of a model.",
            ["model", "version"], buckets=BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip

        self.shadows = Counter(
            "modelyard_shadow_requests", "Requests copied to a shadow version, by outcome "
            "(agree, disagree, error).",
            ["model", "version", "shadow", "outcome"], registry=self.registry,
        )  # fmt: skip

        self.refused = Counter(
            "modelyard_refused_versions", "Versions not swapped in, by reason (signature_changed, "
            "untrusted, unloadable, …): the served version went on answering.",
            ["model", "version", "reason"], registry=self.registry,
        )  # fmt: skip
        self.fallback = Gauge(
            "modelyard_alias_fallback", "1 while a followed alias points at a version that cannot "
            "load (version) and the last good version answers instead.",
            ["model", "alias", "version"], registry=self.registry, multiprocess_mode="liveall",
        )  # fmt: skip

        self.feedback = Counter(
            "modelyard_feedback", "Labels received for answered requests.", ["model"],
            registry=self.registry,
        )  # fmt: skip
        self.alert_state = Gauge(
            "modelyard_alert_state", "Alert rules: 0 inactive, 1 pending, 2 firing.", ["rule"],
            registry=self.registry, multiprocess_mode="liveall",
        )  # fmt: skip
        # A firing can last one evaluation (a rollback clears the signal), shorter than a
        # scrape: the counter keeps it where the state gauge may not.
        self.alert_firings = Counter(
            "modelyard_alert_firings", "Times an alert rule started firing.", ["rule"],
            registry=self.registry,
        )  # fmt: skip
        self.alert_evaluator = Gauge(
            "modelyard_alert_evaluator", "1 while this process holds the alert lease and evaluates "
            "the rules (one process of the replicas sharing them), else 0.",
            registry=self.registry, multiprocess_mode="liveall",
        )  # fmt: skip
        self.drift_share = Gauge(
            "modelyard_drift_share", "Share of drifted columns in the last evaluated window "
            "(kind: inputs or predictions).", ["model", "version", "kind"],
            registry=self.registry, multiprocess_mode="liveall",
        )  # fmt: skip
        self.drift_score = Gauge(
            "modelyard_drift_score", "Drift score of an input column in the last evaluated window.",
            ["model", "version", "column"], registry=self.registry, multiprocess_mode="liveall",
        )  # fmt: skip
        self.accuracy = Gauge(
            "modelyard_accuracy", "Accuracy from feedback in the last evaluated window.",
            ["model", "version"], registry=self.registry, multiprocess_mode="liveall",
        )  # fmt: skip
        # A gauge, not a counter: each evaluation rereads the window's damaged lines.
        self.log_unreadable = Gauge(
            "modelyard_prediction_log_unreadable_lines", "Log lines skipped as unreadable "
            "(damaged records) in the last evaluated window.", ["model", "version"],
            registry=self.registry, multiprocess_mode="liveall",
        )  # fmt: skip
        self.data_quality = Gauge(
            "modelyard_data_quality", "Data quality of an input column in the last evaluated "
            "window, by check (missing_share, type_mismatch_share, out_of_range_share, "
            "unseen_categories, constant); column \"\" is the whole window's missing_share.",
            ["model", "version", "column", "check"], registry=self.registry,
            multiprocess_mode="liveall",
        )  # fmt: skip
        self.multivariate_drift = Gauge(
            "modelyard_multivariate_drift", "The inputs' PCA reconstruction error in the last "
            "evaluated window over its calibrated threshold (above 1: the joint distribution "
            "drifted).", ["model", "version"], registry=self.registry,
            multiprocess_mode="liveall",
        )  # fmt: skip
        self.estimated_accuracy = Gauge(
            "modelyard_estimated_accuracy", "Accuracy expected from the model's confidence "
            "(mean top class probability) in the last evaluated window.", ["model", "version"],
            registry=self.registry, multiprocess_mode="liveall",
        )  # fmt: skip
        self.sample_drift = Gauge(
            "modelyard_sample_drift", "1 - p-value of an embedding (MMD) or text (descriptors) "
            "drift test in the last evaluated window; test is embedding_drift or text_drift.",
            ["model", "version", "test", "name"], registry=self.registry,
            multiprocess_mode="liveall",
        )  # fmt: skip
        self.log_dropped = Counter(
            "modelyard_prediction_log_dropped", "Prediction records dropped: buffer full or "
            "storage failing.", registry=self.registry,
        )  # fmt: skip

    def shadow(self, model: str, version: str, shadow: str, outcome: str) -> None:
        """Count one shadowed request and whether the shadow agreed."""
        self.shadows.labels(model, version, shadow, outcome).inc()

    def watch(self, gauges: Gauges) -> None:
        """Report queue depth and loaded versions from `gauges` at each scrape."""
        self._pool = _PoolCollector(gauges)
        self.registry.register(self._pool)

    def observe(self, model: str, version: str, code: int, seconds: float) -> None:
        """Count one answered request."""
        key = (model, version, code)
        series = self._answered.get(key)
        if series is None:  # `labels()` looks its child up under a lock: once per series here
            series = (self.requests.labels(model, version, str(code)),
                      self.latency.labels(model, version))  # fmt: skip
            self._answered[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes (every worker's counts, with several)."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined)  # type: ignore[no-untyped-call]  # workers summed
        if hasattr(self, "_pool"):
            combined.register(self._pool)  # this worker's queues and versions
        return generate_latest(combined)


class _PoolCollector(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "modelyard_queue_depth", "Requests waiting for a batch.", labels=["model", "version"]
        )
        loaded = GaugeMetricFamily(
            "modelyard_loaded_versions", "Model versions loaded and serving (1 each).",
            labels=["model", "version"],
        )  # fmt: skip
        for model, version, waiting in self.gauges():
            depth.add_metric([model, version], waiting)
            loaded.add_metric([model, version], 1)
        yield depth
        yield loaded
