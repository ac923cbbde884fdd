"""The prediction log: requests and answers recorded for monitoring, never at a client's cost.

`record` only samples and appends to a bounded buffer; a background task hands full batches to
the sink in a worker thread. When the sink is slower than the traffic and the buffer is full,
records are dropped and counted (`modelyard_prediction_log_dropped_total`) instead of making a
request wait; so are those of a batch the sink fails to store (a full disk: logged once, and the
next batch stored after it starts on a line of its own). The JSON-lines sink writes
`<home>/predictions/<model>/<version>/<day>.jsonl`; a server on a registry writes through the
registry's `PredictionStore` (the database on PostgreSQL, shared by every replica) instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelyard.monitoring import write_log_lines
from modelyard.serving._batching import Outputs
from modelyard.serving._codecs import Request
from modelyard.serving._tasks import cancel

Record = dict[str, Any]

log = logging.getLogger("modelyard.serving")


class PredictionSink(Protocol):
    """Where logged predictions go; `write` runs in a worker thread."""

    def write(self, records: list[Record]) -> None:
        """Store a batch of records."""


class MemorySink:
    """Keeps records in a list: the fake sink for tests."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def write(self, records: list[Record]) -> None:
        self.records.extend(records)


class JsonLinesSink:
    """Appends records as JSON lines, one file per model version and UTC day."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, records: list[Record]) -> None:
        write_log_lines(self.root, records)


class PredictionLog:
    """Sample requests into a bounded buffer and flush them to `sink` in the background."""

    def __init__(
        self,
        sink: PredictionSink,
        *,
        sample: float = 1.0,
        capacity: int = 10_000,
        batch: int = 500,
        interval: float = 0.5,
        dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.sink = sink
        self.sample = sample
        self.capacity = capacity
        self.batch = batch
        self.interval = interval
        self.dropped = dropped  # told how many records were dropped, for the metrics
        self._buffer: deque[Record] = deque()
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # the last batch could not be stored (logged once per outage)

    def record(
        self, model: str, version: str, request: Request, outputs: Outputs, seconds: float
    ) -> None:
        """Log one answered request, if sampled; never blocks, never raises."""
        if self.sample < 1.0 and random.random() >= self.sample:
            return
        if len(self._buffer) >= self.capacity:
            if self.dropped is not None:
                self.dropped(1)
            return
        self._buffer.append(
            {
                "id": request.id,
                "model": model,
                "version": version,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "latency_ms": round(seconds * 1000, 3),
                "inputs": {name: _plain(array) for name, array in request.inputs.items()},
                "outputs": {name: _plain(array) for name, array in outputs.items()},
            }
        )

    def start(self) -> None:
        """Start flushing on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop(self) -> None:
        """Flush what is buffered and stop."""
        await cancel(self._task)
        self._task = None
        while self._buffer:
            await self._flush()

    async def _flush_forever(self) -> None:
        while True:
            began = time.monotonic()
            while self._buffer:
                await self._flush()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    async def _flush(self) -> None:
        records = [self._buffer.popleft() for _ in range(min(self.batch, len(self._buffer)))]
        try:
            await asyncio.to_thread(self.sink.write, records)
        except Exception as error:  # a failing sink loses these records, counted: serving goes on
            if self.dropped is not None:
                self.dropped(len(records))
            if not self._failing:  # once per outage: a full disk fails every batch
                log.warning("prediction log: cannot store records (%s); dropping them, counted "
                            "in modelyard_prediction_log_dropped, until it can", error)  # fmt: skip
            self._failing = True
            return
        if self._failing:
            log.warning("prediction log: storing records again")
            self._failing = False


def _plain(array: np.ndarray[Any, Any]) -> Any:
    return array.tolist() if array.dtype.kind in "OSUT" else array
