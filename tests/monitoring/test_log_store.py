"""The `PredictionStore` contract, run against each store: JSON-lines files (the embedded
default), the registry's database on SQLite (fast) and on PostgreSQL (what replicas share)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sqlalchemy import select

from modelyard.monitoring import (
    DatabaseLogStore,
    FileLogStore,
    PredictionStore,
    encode_record,
    replica_id,
)
from modelyard.monitoring._log_scan import PROBE
from modelyard.registry import Database, records_statement
from modelyard.registry._tables import prediction_records

NOW = datetime.now(UTC).replace(microsecond=0)


def record(index: int, at: datetime, *, version: str = "1", model: str = "fraud") -> dict[str, Any]:
    return {"id": f"r{index}", "model": model, "version": version,
            "time": at.isoformat(timespec="milliseconds"), "latency_ms": 1.5,
            "inputs": {"x": np.array([[index, 2.0]])}, "outputs": {"y": [index % 2]}}  # fmt: skip


@pytest.fixture(params=["files", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    if request.param == "files":
        yield FileLogStore(tmp_path / "predictions", tmp_path / "feedback")
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres")
    database = Database(url)
    database.open()
    database.migrate()
    yield DatabaseLogStore(database, replica="host-a:1")
    database.close()


def test_a_window_holds_what_was_written_between_its_ends(store: PredictionStore) -> None:
    times = [NOW - timedelta(minutes=m) for m in (90, 30, 10, 1)]
    store.write([record(i, at) for i, at in enumerate(times)])
    store.write([record(9, NOW - timedelta(minutes=5), version="2")])
    found = list(store.read_records("fraud", "1", since=NOW - timedelta(hours=1), until=NOW))
    assert [r["id"] for r in found] == ["r1", "r2", "r3"]  # oldest first, [since, until)
    assert found[0]["inputs"] == {"x": [[1.0, 2.0]]} and found[0]["outputs"] == {"y": [1]}
    edge = list(store.read_records("fraud", "1", since=times[2], until=times[3]))
    assert [r["id"] for r in edge] == ["r2"]
    assert store.served_versions() == [("fraud", "1"), ("fraud", "2")]


def test_feedback_by_request_id_where_the_latest_wins(store: PredictionStore) -> None:
    store.write_feedback("fraud", [{"id": "r1", "label": 0}, {"id": "r2", "label": [1, 0]}])
    store.write_feedback("fraud", [{"id": "r1", "label": 1}])
    store.write_feedback("other", [{"id": "r3", "label": 1}])
    labels = store.read_feedback("fraud", since=NOW - timedelta(minutes=1))
    assert labels == {"r1": 1, "r2": [1, 0]}
    assert store.read_feedback("fraud", since=datetime.now(UTC) + timedelta(days=2)) == {}


def test_activity_and_window_scans(store: PredictionStore) -> None:
    # In time order, as serving appends (the files' scans bisect on it).
    store.write([record(300 + i, NOW - timedelta(hours=5)) for i in range(20)])
    store.write([record(i, NOW - timedelta(minutes=50) + timedelta(seconds=i)) for i in range(300)])
    seen = store.activity("fraud", "1", now=NOW)
    assert (seen.last_hour, seen.last_day) == (300, 320)
    assert seen.last_seen is not None and abs(seen.last_seen - (NOW - timedelta(seconds=2701))) < (
        timedelta(seconds=2)
    )
    edges = [NOW - timedelta(hours=6), NOW - timedelta(hours=1), NOW]
    early, late = store.scan_windows("fraud", "1", edges=edges, sample=50, labelled={"r7", "r310"})
    assert (early.requests, late.requests) == (20, 300)
    assert len(early.sample) == 20 and len(late.sample) == 50
    assert all(orjson.loads(line)["model"] == "fraud" for line in late.sample)
    assert [orjson.loads(line)["id"] for line in late.labelled] == ["r7"]
    assert store.scan_windows("fraud", "1", edges=edges, sample=50)[1].sample == late.sample


def test_a_busy_window_is_probed_not_read_whole(store: PredictionStore) -> None:
    start = NOW - timedelta(minutes=30)
    store.write([record(i, start + timedelta(milliseconds=i)) for i in range(3 * PROBE)])
    (bucket,) = store.scan_windows("fraud", "1", edges=[start, NOW], sample=100,
                                   labelled={f"r{i}" for i in range(3 * PROBE)})  # fmt: skip
    assert bucket.requests == 3 * PROBE and len(bucket.sample) == 100
    assert PROBE / 2 < len(bucket.labelled) < 1.5 * PROBE  # about PROBE of the window's records


def test_the_database_keeps_the_log_lines_bytes_and_the_replica(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    database.open()
    database.migrate()
    store = DatabaseLogStore(database)
    written = record(1, NOW - timedelta(seconds=5))
    store.write([written])
    store.write([record(2, NOW - timedelta(seconds=4))], replica="elsewhere:7")
    with database.read() as connection:
        rows = connection.execute(select(prediction_records.c.record, prediction_records.c.replica))
        stored = sorted(rows)  # by record: r1 first
    assert stored[0][0] == encode_record(written)  # what a log file's line holds
    assert sorted(row[1] for row in stored) == sorted(["elsewhere:7", replica_id()])
    since, until = NOW - timedelta(minutes=1), NOW
    assert store.replicas("fraud", "1", since=since, until=until) == 2
    sql = str(records_statement("fraud", "1", since, until, share=0.1))
    assert "prediction_records.time >=" in sql and "%" in sql
    database.close()
