"""Prediction log benchmark: a monitoring report over a window of N records read from the
registry's PostgreSQL (what replicas share) against the same report from JSON-lines files (the
embedded default), plus the time to write the records in serving's batches of 500.

    python bench/monitor_log.py --database-url postgresql+psycopg://user@host/db
        [--records 100000] [--repeat 3] [--out bench/results/monitor_log.json]

The database named must exist and be empty of our tables or migrated (a scratch database: the
records are deleted at the end). The ratio column sets each store against the files in the same
run; the goal (issue 21) is that the shared log keeps a 100k-record window fast: ratio near 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete  # noqa: E402

from modelyard.monitoring import (  # noqa: E402
    DatabaseLogStore,
    FileLogStore,
    PredictionStore,
    monitor_window,
    write_reference,
)
from modelyard.registry import Database  # noqa: E402
from modelyard.registry._tables import prediction_records  # noqa: E402

BATCH = 500
FEATURES = 4


def records(count: int, end: datetime) -> list[dict[str, Any]]:
    """`count` one-row requests spread over the hour before `end`, oldest first."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(count, FEATURES)).round(4)
    step = timedelta(hours=1) / count
    return [
        {"id": f"req-{i:07d}", "model": "bench", "version": "1",
         "time": (end - timedelta(hours=1) + step * i).isoformat(timespec="milliseconds"),
         "latency_ms": 1.25, "inputs": {"x": [rows[i].tolist()]},
         "outputs": {"y": [int(rows[i, 0] > 0)]}}
        for i in range(count)
    ]  # fmt: skip


def timed(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(store: PredictionStore, log: list[dict[str, Any]], folder: Path, end: datetime,
            repeat: int) -> dict[str, float]:  # fmt: skip
    began = time.perf_counter()
    for start in range(0, len(log), BATCH):
        store.write(log[start : start + BATCH])
    write_s = time.perf_counter() - began

    def report() -> None:
        found, _, _ = monitor_window(model="bench", version=1, folder=folder,
                                     window=timedelta(hours=1), until=end, store=store)  # fmt: skip
        if found.requests != len(log):
            raise SystemExit(f"the report saw {found.requests} of {len(log)} records")

    return {"write_s": write_s, "monitor_s": timed(repeat, report)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/monitor_log.json")
    options = parser.parse_args()
    end = datetime.now(UTC).replace(microsecond=0)
    log = records(options.records, end)
    database = Database(options.database_url)
    database.open()
    database.migrate()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "version"
        sample = np.random.default_rng(1).normal(size=(2000, FEATURES))
        write_reference(folder, {"x": sample}, {"y": (sample[:, 0] > 0).astype(int)})
        files = FileLogStore(Path(scratch) / "predictions", Path(scratch) / "feedback")
        results = {"files": measure(files, log, folder, end, options.repeat)}
        try:
            shared = DatabaseLogStore(database)
            results["postgresql"] = measure(shared, log, folder, end, options.repeat)
        finally:
            with database.write() as connection:
                connection.execute(delete(prediction_records).where(
                    prediction_records.c.model == "bench"))  # fmt: skip
            database.close()
    base = results["files"]["monitor_s"]
    print(
        f"{'store':<12}{'write s':>10}{'monitor s':>12}{'ratio':>8}   ({options.records} records)"
    )
    for name, row in results.items():
        row["ratio"] = row["monitor_s"] / base
        print(f"{name:<12}{row['write_s']:>10.2f}{row['monitor_s']:>12.3f}{row['ratio']:>8.2f}")
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps({"records": options.records, "results": results,
                                       "python": platform.python_version()}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
