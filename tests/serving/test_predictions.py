from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import orjson
import pytest

from modelyard.serving import JsonLinesSink, MemorySink, PredictionLog, Request

pytestmark = pytest.mark.anyio


def request(value: float) -> Request:
    return Request(inputs={"x": np.array([[value, 2.0]]), "s": np.array(["a"], object)}, id="r")


async def test_records_reach_the_sink_in_the_background() -> None:
    sink = MemorySink()
    log = PredictionLog(sink, interval=0.01)
    log.start()
    log.record("m", "1", request(1.0), {"y": np.array([3.0])}, 0.0015)
    await asyncio.sleep(0.05)
    assert len(sink.records) == 1
    record = sink.records[0]
    assert (record["id"], record["model"], record["version"], record["latency_ms"]) == (
        "r", "m", "1", 1.5,
    )  # fmt: skip
    assert record["inputs"]["s"] == ["a"]
    await log.stop()


async def test_a_full_buffer_drops_and_counts_instead_of_waiting() -> None:
    dropped: list[int] = []
    log = PredictionLog(MemorySink(), capacity=3, dropped=dropped.append)
    for i in range(5):  # not started: nothing drains the buffer
        log.record("m", "1", request(i), {"y": np.array([i])}, 0.001)
    assert sum(dropped) == 2
    await log.stop()  # flushes the three it kept


async def test_sampling_and_a_failing_sink() -> None:
    class Broken:
        def write(self, records: list[dict[str, object]]) -> None:
            raise OSError("disk full")

    dropped: list[int] = []
    log = PredictionLog(Broken(), sample=0.5, dropped=dropped.append)
    for i in range(400):
        log.record("m", "1", request(i), {"y": np.array([i])}, 0.001)
    kept = len(log._buffer)
    assert 120 < kept < 280
    await log.stop()
    assert sum(dropped) == kept


async def test_json_lines_files_per_version_and_day(tmp_path: Path) -> None:
    log = PredictionLog(JsonLinesSink(tmp_path), interval=0.01)
    log.record("fraud", "3", request(1.0), {"y": np.array([1], np.int64)}, 0.002)
    log.record("fraud", "3", request(2.0), {"y": np.array([0], np.int64)}, 0.002)
    await log.stop()
    (day,) = (tmp_path / "fraud" / "3").iterdir()
    lines = [orjson.loads(line) for line in day.read_bytes().splitlines()]
    assert [line["inputs"]["x"] for line in lines] == [[[1.0, 2.0]], [[2.0, 2.0]]]
    assert day.name == lines[0]["time"][:10] + ".jsonl"


async def test_json_lines_take_raw_bytes_and_other_objects(tmp_path: Path) -> None:
    log = PredictionLog(JsonLinesSink(tmp_path), interval=0.01)
    words = Request(inputs={"w": np.array([b"\xffa", "b"], object)})
    log.record("m", "1", words, {"y": np.array([{1}], object)}, 0.001)
    await log.stop()
    (day,) = (tmp_path / "m" / "1").iterdir()
    line = orjson.loads(day.read_bytes())
    assert (line["inputs"]["w"], line["outputs"]["y"]) == (["\\xffa", "b"], ["{1}"])
