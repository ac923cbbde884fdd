"""A damaged line of the prediction log (a record cut short by a full disk, garbage bytes, a
hand edit) is skipped and counted by every reader, never raised; the writer never glues two
records together, on a real full disk (a 64 KiB tmpfs) too; and a drift alert still fires
behind a damaged line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard.monitoring import (
    AlertLoop,
    AlertRule,
    DatabaseLogStore,
    UnreadableLines,
    activity,
    encode_record,
    monitor_window,
    read_feedback,
    read_records,
    write_feedback,
    write_log_lines,
    write_reference,
)
from modelyard.monitoring._log_scan import parse_lines, parse_outputs
from modelyard.registry import (
    Database,
    FeedbackRow,
    PredictionRow,
    insert_feedback,
    insert_predictions,
)
from modelyard.serving import JsonLinesSink, Metrics, PredictionLog, Request
from tests.cli.test_registry import home, ok

_ = home  # the CLI test's fixture: a fresh MODELYARD_HOME

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
RNG = np.random.default_rng(22)
REFERENCE = RNG.normal(size=(2000, 4))


def record(index: int, moment: datetime, row: Any = None, *, model: str = "fraud",
           version: str = "1") -> dict[str, Any]:  # fmt: skip
    values = [[float(index)] * 4] if row is None else [list(map(float, row))]
    return {"id": f"r{index}", "model": model, "version": version,
            "time": moment.isoformat(timespec="milliseconds"), "latency_ms": 1.0,
            "inputs": {"input-0": values}, "outputs": {"output-0": [index % 2]}}  # fmt: skip


def line(changes: dict[str, Any], *, drop: str = "") -> bytes:
    """A record line with some fields changed (or one dropped)."""
    changed = {**record(99, NOW), **changes}
    changed.pop(drop, None)
    return orjson.dumps(changed) + b"\n"


WHOLE = encode_record(record(2, NOW - timedelta(seconds=30)))
DAMAGE = [  # each line is one unreadable line
    WHOLE[:37] + encode_record(record(3, NOW - timedelta(seconds=29))) + b"\n",  # cut, glued
    WHOLE[:60] + b"\n",  # cut, then a fresh line (what the writer does now)
    b"\xff\xfe\x00\x81 garbage {{{\n",
    b"[1, 2, 3]\n",
    b'"a string"\n',
    b"null\n",
    b"[" * 100_000 + b"\n",  # deeper than any parser's limit
    line({"time": "yesterday"}),
    line({"time": "2026-05-04T11:59:00"}),  # no UTC offset: cannot be compared
    line({"time": 1714824000}),
    line({}, drop="time"),
    line({}, drop="inputs"),
    line({"inputs": [[1, 2, 3, 4]]}),
    line({"inputs": {"input-0": 5}}),  # a value that is not an array
    line({}, drop="outputs"),
    line({"id": ["r", 1]}),  # an id feedback could not join on
]


def damaged_log(root: Path) -> Path:
    """r0, r1 whole; the damage (r3 glued behind a cut record); a blank line; r4 whole."""
    write_log_lines(root, [record(0, NOW - timedelta(minutes=2))])
    path = root / "fraud" / "1" / f"{NOW.date()}.jsonl"
    with open(path, "ab") as handle:
        handle.write(encode_record(record(1, NOW - timedelta(minutes=1))) + b"\n")
        handle.write(b"".join(DAMAGE) + b"\n")
    write_log_lines(root, [record(4, NOW - timedelta(seconds=10))])
    return path


def test_every_damaged_line_is_skipped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    damaged_log(root)
    unreadable = UnreadableLines()
    found = read_records(root, "fraud", "1", since=NOW - timedelta(hours=1), until=NOW,
                         unreadable=unreadable)  # fmt: skip
    ids = [r["id"] for r in found]
    assert ids == ["r0", "r1", "r3", "r4"]  # r3 glued behind a cut record comes back
    assert unreadable.count == len(DAMAGE)  # the blank line is not damage
    lines = (tmp_path / "predictions" / "fraud" / "1" / f"{NOW.date()}.jsonl").read_bytes()
    records, damaged = parse_lines(lines.splitlines())  # the pages' sampled reads
    assert [r["id"] for r in records] == ids and damaged == len(DAMAGE)
    assert {r["id"] for r in parse_outputs(lines.splitlines())} >= {"r0", "r1", "r4"}


def test_a_report_over_a_damaged_log_counts_the_lines(tmp_path: Path) -> None:
    root, feedback, folder = tmp_path / "predictions", tmp_path / "feedback", tmp_path / "v1"
    damaged_log(root)
    write_reference(folder, {"input-0": REFERENCE}, {"output-0": (REFERENCE[:, 0] > 0) * 1})
    write_feedback(feedback, "fraud", [{"id": "r0", "label": [0]}, {"id": "r4", "label": [0]}])
    with open(next((feedback / "fraud").iterdir()), "ab") as handle:
        handle.write(b'{"id": "r1"\n[]\n{"id": "r1", "label": {"a": 1}, "time": "x"}\n')
    report, _, _ = monitor_window(model="fraud", version=1, folder=folder,
                                  window=timedelta(hours=1), until=NOW, predictions=root,
                                  feedback=feedback)  # fmt: skip
    assert (report.requests, report.rows) == (4, 4)
    assert report.unreadable_lines == len(DAMAGE) + 3  # the feedback's three too
    assert report.performance is not None and report.performance.rows == 2
    assert "unreadable log lines (skipped)" in report._repr_html_()
    unreadable = UnreadableLines()
    labels = read_feedback(feedback, "fraud", since=NOW - timedelta(days=400),
                           unreadable=unreadable)  # fmt: skip
    assert labels == {"r0": [0], "r4": [0]} and unreadable.count == 3


def test_damaged_rows_of_the_database_are_skipped_and_counted(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    database.open()
    database.migrate()
    store = DatabaseLogStore(database)
    store.write([record(0, NOW - timedelta(minutes=1))])
    insert_predictions(database, [
        PredictionRow(model="fraud", version="1", time=NOW - timedelta(seconds=50),
                      request_id=f"bad{index}", record=damage)
        for index, damage in enumerate(DAMAGE)
    ], replica="elsewhere:1")  # fmt: skip
    store.write_feedback("fraud", [{"id": "r0", "label": [1]}])
    insert_feedback(database, [FeedbackRow(model="fraud", time=datetime.now(UTC),
                                           request_id="r0", record=b"{garbage")])  # fmt: skip
    unreadable = UnreadableLines()
    records = store.read_records("fraud", "1", since=NOW - timedelta(hours=1), until=NOW,
                                 unreadable=unreadable)  # fmt: skip
    assert [r["id"] for r in records] == ["r0", "r3"] and unreadable.count == len(DAMAGE)
    unreadable = UnreadableLines()
    labels = store.read_feedback("fraud", since=NOW - timedelta(days=1), unreadable=unreadable)
    assert labels == {"r0": [1]} and unreadable.count == 1
    database.close()


def test_a_batch_after_a_cut_record_starts_on_a_fresh_line(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    write_log_lines(root, [record(0, NOW - timedelta(minutes=1))])
    path = root / "fraud" / "1" / f"{NOW.date()}.jsonl"
    with open(path, "ab") as handle:  # a write the disk cut short
        handle.write(encode_record(record(1, NOW - timedelta(seconds=50)))[:50])
    write_log_lines(root, [record(i, NOW - timedelta(seconds=40 - i)) for i in (2, 3)])
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4 and all(line.count(b'{"id":') == 1 for line in lines)
    unreadable = UnreadableLines()
    found = read_records(root, "fraud", "1", since=NOW - timedelta(hours=1), until=NOW,
                         unreadable=unreadable)  # fmt: skip
    assert [r["id"] for r in found] == ["r0", "r2", "r3"] and unreadable.count == 1


def test_activity_reads_past_a_cut_last_line(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    now = datetime.now(UTC)
    write_log_lines(root, [record(0, now - timedelta(seconds=5))])
    path = root / "fraud" / "1" / f"{now.date()}.jsonl"
    with open(path, "ab") as handle:  # cut inside its time
        handle.write(encode_record(record(1, now))[:62])
    seen = activity(root, "fraud", "1", now=now + timedelta(seconds=1))
    assert (
        seen.last_seen is not None
        and seen.last_seen.isoformat()[:19] == ((now - timedelta(seconds=5)).isoformat()[:19])
    )


def test_monitor_report_prints_the_skipped_lines(home: Path, tmp_path: Path) -> None:
    with Yard() as yard:
        model = LogisticRegression().fit(REFERENCE, REFERENCE[:, 0] > 0)
        yard.log_model(model, name="fraud", input_example=REFERENCE[:2], reference_data=REFERENCE)
    now = datetime.now(UTC)
    root = home / "predictions"
    write_log_lines(root, [record(i, now - timedelta(seconds=60 - i), row)
                           for i, row in enumerate(REFERENCE[:50])])  # fmt: skip
    with open(root / "fraud" / "1" / f"{now.date()}.jsonl", "ab") as handle:
        handle.write(b"".join(DAMAGE[2:5]))
    table = ok("monitor", "report", "fraud", "--window", "10m")
    assert "fraud:1: 50 requests, 50 rows" in table
    assert "skipped 3 unreadable log lines (damaged records)" in table
    assert json.loads(ok("monitor", "report", "fraud", "--json"))["unreadable_lines"] == 3
    out = tmp_path / "report"
    ok("monitor", "report", "fraud", "--out", str(out))
    assert "Skipped 3 unreadable log lines" in (out / "report.html").read_text()
    assert json.loads((out / "report.json").read_text())["unreadable_lines"] == 3


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that fills up for real."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"cannot mount a tmpfs here: {error}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True, timeout=30)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def log_round(log: PredictionLog, first: int, count: int) -> None:
    for index in range(first, first + count):
        request = Request(inputs={"x": np.full((1, 4), float(index))}, id=f"r{index}")
        log.record("fraud", "1", request, {"y": np.array([index % 2])}, 0.001)
    await log.stop()  # writes what is buffered, in batches


@pytest.mark.anyio
async def test_a_full_disk_cuts_one_record_and_merges_none(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, filler = small_disk / "predictions", small_disk / "filler"
    filler.write_bytes(b"\0" * 16384)  # room to free once the disk is full
    dropped: list[int] = []
    log = PredictionLog(JsonLinesSink(root), batch=8, dropped=dropped.append)
    start = datetime.now(UTC) - timedelta(seconds=1)
    caplog.set_level(logging.WARNING, logger="modelyard.serving")
    sent = 0
    while not dropped:  # the serving logger's batches, until the disk is full
        assert sent < 2000, "the 64 KiB disk never filled"
        await log_round(log, sent, 8)
        sent += 8
    failed = range(sent - 8, sent)
    (path,) = (root / "fraud" / "1").iterdir()
    cut = path.read_bytes()[-1:] != b"\n"  # the last write stopped inside a record
    await log_round(log, sent, 8)  # still full: dropped as well
    filler.unlink()
    await log_round(log, sent + 8, 16)  # space again: stored, from a fresh line
    assert sum(dropped) == 16
    warnings = [r.getMessage() for r in caplog.records if r.name == "modelyard.serving"]
    assert len(warnings) == 2 and "No space left on device" in warnings[0]
    assert warnings[1] == "prediction log: storing records again"

    unreadable = UnreadableLines()
    found = list(read_records(root, "fraud", "1", since=start, until=datetime.now(UTC)
                              + timedelta(seconds=1), unreadable=unreadable))  # fmt: skip
    ids = [int(r["id"][1:]) for r in found]
    whole = [i for i in ids if i in failed]  # those written whole before the cut
    assert ids == list(range(failed.start)) + whole + list(range(sent + 8, sent + 24))
    assert whole == list(failed)[: len(whole)] and len(whole) < 8
    assert all(r["inputs"]["x"] == [[float(i)] * 4] for i, r in zip(ids, found, strict=True))
    assert unreadable.count == int(cut)
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(found) + int(cut)
    assert all(line.count(b'{"id":') == 1 for line in lines)  # no two records on a line


EFBIG_SCRIPT = """
import errno, resource, sys
from datetime import UTC, datetime
from pathlib import Path
from modelyard.monitoring import write_log_lines
root, limit = Path(sys.argv[1]), int(sys.argv[2])
def batch(first):
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return [{"id": f"r{i}", "model": "fraud", "version": "1", "time": now, "latency_ms": 1.0,
             "inputs": {"x": [[float(i)] * 4]}, "outputs": {"y": [0]}}
            for i in range(first, first + 4)]
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # Python ignores SIGXFSZ: EFBIG
sent = 0
while True:
    try:
        write_log_lines(root, batch(sent))
    except OSError as error:
        assert error.errno == errno.EFBIG, error
        break
    sent += 4
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # the limit is lifted
write_log_lines(root, batch(sent + 4))
print(sent)
"""


def test_a_file_size_limit_cuts_one_record_and_merges_none(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    done = subprocess.run([sys.executable, "-c", EFBIG_SCRIPT, str(root), "3000"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent = int(done.stdout)
    unreadable = UnreadableLines()
    now = datetime.now(UTC)
    found = read_records(root, "fraud", "1", since=now - timedelta(minutes=5),
                         until=now + timedelta(seconds=1), unreadable=unreadable)  # fmt: skip
    ids = [int(r["id"][1:]) for r in found]
    whole = [i for i in ids if sent <= i < sent + 4]  # the failed batch's, before the cut
    assert ids == list(range(sent)) + whole + list(range(sent + 4, sent + 8))
    (path,) = (root / "fraud" / "1").iterdir()
    assert path.stat().st_size > 3000 and unreadable.count == 1  # 3000 falls inside a record
    assert all(line.count(b'{"id":') == 1 for line in path.read_bytes().splitlines())


DRIFT_RULE = AlertRule.model_validate({
    "name": "fraud-drift", "model": "fraud@production", "signal": "drift_share", "op": ">=",
    "threshold": 0.5, "window": "5m", "for": "0s", "actions": [{"type": "rollback"}],
})  # fmt: skip


@pytest.mark.anyio
async def test_drift_behind_a_damaged_line_still_fires_and_rolls_back(tmp_path: Path) -> None:
    with Yard(Settings(home=tmp_path / "home")) as yard:
        for seed in (1, 2):
            truth = (REFERENCE[:, seed] > 0).astype(int)
            yard.log_model(LogisticRegression().fit(REFERENCE, truth), name="fraud",
                           input_example=REFERENCE[:2], reference_data=REFERENCE,
                           alias="production")  # fmt: skip
        now = datetime.now(UTC)
        root = tmp_path / "home" / "predictions"
        drifted = RNG.normal(size=(300, 4)) * 3 + 2
        records = [record(i, now - timedelta(seconds=90 - i / 10), row, version="2")
                   for i, row in enumerate(drifted)]  # fmt: skip
        write_log_lines(root, records[:1])
        with open(root / "fraud" / "2" / f"{now.date()}.jsonl", "ab") as handle:
            handle.write(encode_record(records[1])[:45])  # cut, glued to the next (old writer)
            handle.write(encode_record(records[2]) + b"\n" + DAMAGE[2])
        write_log_lines(root, records[3:])
        metrics = Metrics()  # the serving process's own
        loop = AlertLoop([DRIFT_RULE], yard=yard, metrics=metrics, interval=60)
        assert await loop.evaluate() == ["fraud-drift"]
        assert yard.get_version("fraud@production").number == 1
    labels = {"model": "fraud", "version": "2"}
    sample = metrics.registry.get_sample_value
    assert sample("modelyard_prediction_log_unreadable_lines", labels) == 2
    assert sample("modelyard_drift_share", {**labels, "kind": "inputs"}) == 1
    assert b"modelyard_prediction_log_unreadable_lines{" in metrics.exposition()
