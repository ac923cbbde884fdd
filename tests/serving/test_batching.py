from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from modelyard.errors import InferenceError, ModelNotReady, ServerBusy
from modelyard.serving import Batcher, Request
from modelyard.serving._batching import Outputs

pytestmark = pytest.mark.anyio


def request(rows: int, start: float = 0.0, width: int = 2) -> Request:
    data = np.arange(rows * width, dtype=np.float64).reshape(rows, width) + start
    return Request(inputs={"x": data})


class Recorder:
    """A `run` that doubles its inputs and records the batch sizes it saw."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, requests: list[Request]) -> list[Outputs]:
        self.batches.append(len(requests))
        return [{"y": r.inputs["x"] * 2} for r in requests]


def batcher(run: Any, **options: Any) -> Batcher:
    return Batcher(run, name="m:1", executor=ThreadPoolExecutor(1), **options)


async def test_concurrent_requests_share_batches_and_get_their_rows() -> None:
    recorder = Recorder()
    queue = batcher(recorder, max_batch_size=16)
    queue.start()
    requests = [request(rows, start=100 * i) for i, rows in enumerate([1, 3, 2, 5, 1, 4])]
    answers = await asyncio.gather(*(queue.submit(r) for r in requests))
    for sent, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer["y"], sent.inputs["x"] * 2)
    assert sum(recorder.batches) == 6 and len(recorder.batches) < 6
    await queue.close()


async def test_batches_respect_the_row_limit_and_keys() -> None:
    recorder = Recorder()
    queue = batcher(recorder, max_batch_size=4, max_wait_ms=1)
    queue.start()
    mixed = [request(3), request(3), request(1, width=5), request(1), Request({"x": np.ones(())})]
    answers = await asyncio.gather(*(queue.submit(r) for r in mixed))
    assert [a["y"].shape for a in answers] == [(3, 2), (3, 2), (1, 5), (1, 2), ()]
    assert max(recorder.batches) <= 2
    await queue.close()


async def test_model_errors_reach_every_request_of_the_batch() -> None:
    def fail(requests: list[Request]) -> list[Outputs]:
        raise ValueError("boom")

    queue = batcher(fail)
    queue.start()
    results = await asyncio.gather(
        queue.submit(request(1)), queue.submit(request(2)), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
    await queue.close()


async def test_a_full_queue_answers_busy_at_once() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(requests: list[Request]) -> list[Outputs]:
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
        return [{"y": r.inputs["x"]} for r in requests]

    queue = batcher(slow, max_batch_size=1, max_queue=2)
    queue.start()
    first = asyncio.ensure_future(queue.submit(request(1)))
    await started.wait()  # the first is running; two may wait
    waiting = [asyncio.ensure_future(queue.submit(request(1))) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(ServerBusy, match="2 requests waiting") as caught:
        await queue.submit(request(1))
    assert caught.value.status_code == 429 and caught.value.retry_after == 1
    assert queue.waiting == 2
    release.set()
    await asyncio.gather(first, *waiting)
    await queue.close()


async def test_close_finishes_the_running_batch_and_refuses_new_requests() -> None:
    def slow(requests: list[Request]) -> list[Outputs]:
        import time

        time.sleep(0.2)
        return [{"y": r.inputs["x"]} for r in requests]

    queue = batcher(slow)
    queue.start()
    running = asyncio.ensure_future(queue.submit(request(2)))
    await asyncio.sleep(0.05)  # the batch is in the model's thread now
    await queue.close()
    assert (await running)["y"].shape == (2, 2)
    with pytest.raises(ModelNotReady, match="being unloaded"):
        await queue.submit(request(1))


async def test_a_broken_run_fails_its_batch_and_the_next_still_runs() -> None:
    calls = []

    def short(requests: list[Request]) -> list[Outputs]:
        calls.append(len(requests))
        return [] if len(calls) == 1 else [{"y": r.inputs["x"]} for r in requests]

    queue = batcher(short)
    queue.start()
    with pytest.raises(InferenceError, match="0 answers came back for 1 requests"):
        await queue.submit(request(1))
    assert (await queue.submit(request(1)))["y"].shape == (1, 2)
    await queue.close()


async def test_a_run_that_fails_as_a_whole_is_repeated_for_each_request_alone() -> None:
    """A run that raises for a whole batch (here: on any batch holding a negative value, with
    every value in its message) fails only the request it fails on alone; no other request
    sees that error or the values it quotes."""
    batches: list[int] = []

    def strict(requests: list[Request]) -> list[Outputs]:
        batches.append(len(requests))
        values = np.concatenate([r.inputs["x"] for r in requests])
        if (values < 0).any():
            raise ValueError(f"negative in {values.ravel().tolist()}")
        return [{"y": r.inputs["x"]} for r in requests]

    queue = batcher(strict, max_batch_size=8)
    queue.start()
    sent = [request(1, start=10 * i) for i in range(6)]
    sent[3] = request(1, start=-5)
    results = await asyncio.gather(*(queue.submit(r) for r in sent), return_exceptions=True)
    for i, result in enumerate(results):
        if i == 3:
            assert isinstance(result, ValueError) and str(result) == "negative in [-5.0, -4.0]"
        else:
            assert not isinstance(result, BaseException)
            np.testing.assert_array_equal(result["y"], sent[i].inputs["x"])
    assert max(batches) > 1  # they were batched, then answered alone
    await queue.close()


async def test_an_error_of_one_request_reaches_that_request_only() -> None:
    def picky(requests: list[Request]) -> list[Outputs | Exception]:
        return [ValueError("mine") if r.rows == 2 else {"y": r.inputs["x"]} for r in requests]

    queue = batcher(picky)
    queue.start()
    results = await asyncio.gather(
        queue.submit(request(1)), queue.submit(request(2)), queue.submit(request(1)),
        return_exceptions=True,
    )  # fmt: skip
    assert [type(r).__name__ for r in results] == ["dict", "ValueError", "dict"]
    await queue.close()
