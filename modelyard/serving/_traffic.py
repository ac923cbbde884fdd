"""Recent requests per model, kept in memory for alert rules on error rate and latency: a bounded
ring of (time, status, seconds), so a window's share of failures and its p99 need no database."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class TrafficSummary:
    """A window of one model's requests."""

    requests: int
    error_rate: float
    latency_p50: float
    latency_p99: float


class Traffic:
    """The last `capacity` requests of each model."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._models: dict[str, deque[tuple[float, int, float]]] = {}

    def record(self, model: str, status: int, seconds: float) -> None:
        """Note one answered request."""
        ring = self._models.get(model)
        if ring is None:
            ring = self._models[model] = deque(maxlen=self.capacity)
        ring.append((time.monotonic(), status, seconds))

    def summary(self, model: str, window: float) -> TrafficSummary | None:
        """Requests of the last `window` seconds, or None when there were none."""
        since = time.monotonic() - window
        recent = [
            (status, seconds) for at, status, seconds in self._models.get(model, ()) if at >= since
        ]
        if not recent:
            return None
        statuses = np.array([status for status, _ in recent])
        latencies = np.array([seconds for _, seconds in recent])
        return TrafficSummary(
            requests=len(recent),
            error_rate=float(np.mean(statuses >= 500)),
            latency_p50=float(np.quantile(latencies, 0.5)),
            latency_p99=float(np.quantile(latencies, 0.99)),
        )
