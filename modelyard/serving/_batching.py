"""Dynamic batching: requests that arrive together are answered by one call of the model.

Requests queue per served version. One collector takes as many compatible requests as fit in
`max_batch_size` rows (same input names, dtypes and trailing shapes), runs them in the model's
thread while the event loop keeps accepting, and hands each request its rows back. While a batch
runs, the next one fills up, so under load batches grow on their own; `max_wait_ms` (0 by
default, which measured best) lets a batch wait for company when the last one had some (a lone
client never waits).
A full queue raises `ServerBusy` at once (429) instead of growing without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import InferenceError, ModelNotReady, ServerBusy
from modelyard.serving._codecs import Request

Outputs = dict[str, np.ndarray[Any, Any]]
Run = Callable[[list[Request]], list[Outputs | Exception]]
"""Answers a batch of requests (in a worker thread): per request, in order, its outputs or the
error that is its alone."""


@dataclass(slots=True)
class _Waiting:
    request: Request
    key: tuple[Any, ...]
    future: asyncio.Future[Outputs]


class Batcher:
    """Queue requests for one served version and answer them in batches through `run`."""

    def __init__(
        self,
        run: Run,
        *,
        name: str,
        executor: Executor,
        max_batch_size: int = 64,
        max_wait_ms: float = 0.0,
        max_queue: int = 512,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self.run = run
        self.name = name
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.observe = observe  # told each batch's size in rows, for the metrics
        self._queue: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_batch = 1

    @property
    def waiting(self) -> int:
        """Requests queued and not yet in a batch."""
        return len(self._queue)

    def start(self) -> None:
        """Start the collector on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._collect())

    async def submit(self, request: Request) -> Outputs:
        """Queue `request` and wait for its outputs; `ServerBusy` when the queue is full."""
        if self._closing:
            raise ModelNotReady(f"{self.name} is being unloaded; retry to reach its successor")
        if len(self._queue) >= self.max_queue:
            raise ServerBusy(self.name, waiting=len(self._queue))
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(request, _key(request), future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Answer everything queued and the batch running, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task  # the collector returns once nothing is left
            self._task = None

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                if not self._queue:
                    continue
            if self.max_wait and self._last_batch > 1 and self._rows() < self.max_batch_size:
                await asyncio.sleep(self.max_wait)  # under load: let the batch fill
            batch = self._take()
            self._last_batch = len(batch)
            if self.observe is not None:
                self.observe(sum(item.request.rows for item in batch))
            await self._answer(loop, batch)

    async def _answer(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting]) -> None:
        """Run `batch` and settle each request's future with its outputs or its own error. A
        run that fails as a whole (a bug of `run`, or a `run` that does not answer each request
        apart) is repeated for each request alone, so one request's error, which may quote its
        values, never reaches another."""
        try:
            results = await loop.run_in_executor(
                self.executor, self.run, [item.request for item in batch]
            )
            if len(results) != len(batch):
                raise InferenceError(
                    self.name, f"{len(results)} answers came back for {len(batch)} requests"
                )
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0], error)
                return
            for item in batch:
                if not item.future.done():
                    await self._answer(loop, [item])
            return
        for item, outputs in zip(batch, results, strict=True):
            _settle(item, outputs)

    def _rows(self) -> int:
        return sum(item.request.rows for item in self._queue)

    def _take(self) -> list[_Waiting]:
        first = self._queue.popleft()
        batch, rows = [first], first.request.rows
        skipped: list[_Waiting] = []
        while self._queue and rows < self.max_batch_size:
            item = self._queue.popleft()
            if item.key != first.key or rows + item.request.rows > self.max_batch_size:
                skipped.append(item)  # for a later batch, in arrival order
                if len(skipped) > 64:
                    break
                continue
            batch.append(item)
            rows += item.request.rows
        self._queue.extendleft(reversed(skipped))
        return batch


def _settle(item: _Waiting, outcome: Outputs | Exception) -> None:
    if item.future.done():  # the client may have gone
        return
    if isinstance(outcome, Exception):
        item.future.set_exception(outcome)
    else:
        item.future.set_result(outcome)


def _key(request: Request) -> tuple[Any, ...]:
    """Requests with equal keys can be stacked along the batch dimension."""
    if any(array.ndim == 0 for array in request.inputs.values()):
        return (id(request),)  # a scalar has no batch dimension: it goes alone
    return tuple(
        (name, array.dtype.str, array.shape[1:] if array.ndim else None)
        for name, array in request.inputs.items()
    )
