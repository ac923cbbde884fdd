"""A steady load of infer requests through the topology's nginx, and what its answers show."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson


@dataclass(frozen=True)
class Answer:
    """One request of the load: when it was sent and answered, and what came back."""

    sent: float
    received: float
    status: int  # 0: no HTTP answer at all (the client saw a transport error)
    version: str
    upstream: str  # the replica that answered (nginx's X-Upstream: the last one tried)
    error: str = ""


class Load:
    """`threads` clients sending infer requests through nginx in a loop until stopped, each of
    `rows_per_request` rows drawn afresh from `rows` (the reference data: the replicas' drift
    rule must see the reference's distribution, and rows repeated in lockstep would not be
    independent draws); every answer is kept in `answers`, in the order they came back."""

    def __init__(
        self, url: str, rows: np.ndarray, *, threads: int = 4, rows_per_request: int = 5,
        pause: float = 0.002,
    ) -> None:  # fmt: skip
        self.url, self.rows, self.pause = url, rows, pause
        self.rows_per_request = rows_per_request
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def failures(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.status != 200]

    def since(self, moment: float) -> list[Answer]:
        return [answer for answer in self.answers if answer.sent >= moment]

    def _run(self, seed: int) -> None:
        headers = {"content-type": "application/json"}
        rng = np.random.default_rng([seed, time.monotonic_ns()])
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                picked = rng.integers(0, len(self.rows), self.rows_per_request)
                body = infer_body(self.rows[picked])
                sent = time.monotonic()
                try:
                    response = client.post(self.url, content=body, headers=headers)
                except httpx.TransportError as failure:
                    self.answers.append(Answer(sent, time.monotonic(), 0, "", "", repr(failure)))
                    continue
                version = ""
                if response.status_code == 200:
                    version = str(response.json().get("model_version", ""))
                upstream = response.headers.get("x-upstream", "").split(",")[-1].strip()
                error = "" if response.status_code == 200 else response.text[:200]
                self.answers.append(Answer(sent, time.monotonic(), response.status_code,
                                           version, upstream, error))  # fmt: skip
                time.sleep(self.pause)


def infer_body(rows: np.ndarray) -> bytes:
    """An Open Inference Protocol request of `rows` as one FP32 tensor."""
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP32",
              "data": rows.ravel().tolist()}  # fmt: skip
    return orjson.dumps({"inputs": [tensor]})


def going_back(answers: Sequence[Answer], old: str, new: str) -> list[Answer]:
    """Answers of `old` to requests sent after the same replica had already answered `new`
    (a request sent once a new answer was back must never get the old version)."""
    first_new: dict[str, float] = {}
    for answer in sorted(answers, key=lambda a: a.received):
        if answer.version == new:
            first_new.setdefault(answer.upstream, answer.received)
    return [
        a
        for a in answers
        if a.version == old and a.upstream in first_new and a.sent > first_new[a.upstream]
    ]


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
