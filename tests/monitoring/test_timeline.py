"""Reading the prediction log for pages (counts by bisection, bounded samples) and drift over
time (one read for all windows; the vectorised KS agrees with `detect_drift`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from modelyard.monitoring import (
    activity,
    detect_drift,
    drift_timeline,
    profile,
    served_versions,
    window_edges,
)
from modelyard.monitoring._log_scan import scan_windows
from modelyard.monitoring._timeline import input_drift_of
from modelyard.serving import JsonLinesSink

NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # half an hour into a new UTC day


def write_log(root: Path, *, minutes: int, shift: float = 0.0, every: int = 1) -> None:
    """One request a minute (of `every` rows) for `minutes` before NOW, across midnight."""
    rng = np.random.default_rng(1)
    records = []
    for index in range(minutes):
        moment = NOW - timedelta(minutes=minutes - index)
        values = rng.normal(shift if moment >= NOW - timedelta(hours=1) else 0.0, 1, every)
        records.append({
            "id": f"r{index}", "model": "m", "version": "1",
            "time": moment.isoformat(timespec="milliseconds"),
            "inputs": {"a": values.tolist(), "b": rng.normal(0, 1, every).tolist()},
            "outputs": {"y": [1] * every},
        })  # fmt: skip
    JsonLinesSink(root).write(records)


def test_activity_counts_the_last_hour_and_day_across_day_files(tmp_path: Path) -> None:
    write_log(tmp_path, minutes=25 * 60)
    assert served_versions(tmp_path) == [("m", "1")]
    assert len(list((tmp_path / "m" / "1").iterdir())) == 3  # three UTC days
    seen = activity(tmp_path, "m", "1", now=NOW)
    assert (seen.last_hour, seen.last_day) == (60, 24 * 60)
    assert seen.last_seen == NOW - timedelta(minutes=1)
    later = activity(tmp_path, "m", "1", now=NOW + timedelta(days=3))
    assert (later.last_hour, later.last_day, later.last_seen) == (0, 0, seen.last_seen)


def test_windows_count_every_request_and_sample_a_few(tmp_path: Path) -> None:
    write_log(tmp_path, minutes=6 * 60)
    edges = [NOW - timedelta(hours=6 - h) for h in range(7)]
    buckets = scan_windows(tmp_path, "m", "1", edges=edges, sample=10, labelled={"r5", "r300"})
    assert [b.requests for b in buckets] == [60] * 6
    assert all(len(b.sample) == 10 for b in buckets)
    assert [len(b.labelled) for b in buckets] == [1, 0, 0, 0, 0, 1]


def test_window_edges_are_aligned_so_finished_windows_repeat() -> None:
    edges = window_edges(NOW, timedelta(hours=1), 3)
    assert edges == [NOW - timedelta(minutes=150), NOW - timedelta(minutes=90),
                     NOW - timedelta(minutes=30), NOW]  # fmt: skip


def test_the_timeline_sees_the_shift_and_skips_damaged_lines(tmp_path: Path) -> None:
    write_log(tmp_path, minutes=4 * 60, shift=3.0, every=5)
    day = tmp_path / "m" / "1" / f"{NOW.date().isoformat()}.jsonl"
    with open(day, "ab") as handle:
        handle.write(b'{"id":"x","model":"m","version":"1","time":"' + 
                     (NOW - timedelta(seconds=5)).isoformat(timespec="milliseconds").encode() +
                     b'","inputs":{"a":[1\n')  # fmt: skip
    rng = np.random.default_rng(2)
    reference = profile({"a": rng.normal(0, 1, 300), "b": rng.normal(0, 1, 300)})
    outputs = profile({"y": np.ones(300, dtype=int)})
    cache: dict = {}  # type: ignore[type-arg]
    edges = window_edges(NOW, timedelta(hours=1), 4)
    timeline = drift_timeline(model="m", version=1, reference=(reference, outputs),
                              predictions=tmp_path, feedback=None, edges=edges,
                              cache=cache)  # fmt: skip
    shares = [w.inputs.share if w.inputs else None for w in timeline.windows]
    assert shares[0] == 0.0 and shares[-1] == 0.5  # `a` moved in the last hour, `b` did not
    assert timeline.damaged == 1
    assert len(cache) == 3  # every finished window; the one in progress is read again
    again = drift_timeline(model="m", version=1, reference=(reference, outputs),
                           predictions=tmp_path, feedback=None, edges=edges,
                           cache=cache)  # fmt: skip
    assert [w.inputs for w in again.windows[:3]] == [w.inputs for w in timeline.windows[:3]]


def test_the_vectorised_ks_matches_detect_drift() -> None:
    rng = np.random.default_rng(3)
    reference = profile({"a": rng.normal(0, 1, 400), "b": rng.normal(0, 1, 400)})
    window = {"a": rng.normal(0.5, 1, 300), "b": rng.normal(0, 1, 300)}
    fast = input_drift_of(reference, window)
    slow = detect_drift(reference, profile(window, reference=reference))
    for mine, theirs in zip(fast.columns, slow.columns, strict=True):
        assert mine.column == theirs.column and mine.test == theirs.test == "ks"
        assert abs(mine.score - theirs.score) < 1e-12
        assert mine.drifted == theirs.drifted
        assert abs((mine.p_value or 0) - (theirs.p_value or 0)) < 0.02


def test_strings_in_a_numeric_column_leave_the_other_columns_tested(tmp_path: Path) -> None:
    """A client sending text in a numeric input: the timeline tests what has values instead of
    losing the whole window (mixed JSON lists used to become all strings)."""
    rng = np.random.default_rng(4)
    reference = profile({"a": rng.normal(0, 1, 400), "b": rng.normal(0, 1, 400)})
    mixed = np.array([*rng.normal(3, 1, 290).tolist(), *["n/a"] * 10], dtype=object)
    report = input_drift_of(reference, {"a": mixed, "b": np.array(["x"] * 300, dtype=object)})
    assert [(c.column, c.drifted) for c in report.columns] == [("a", True)]
    records = [{
        "id": f"r{i}", "model": "m", "version": "1",
        "time": (NOW - timedelta(minutes=30 - i)).isoformat(timespec="milliseconds"),
        "inputs": {"a": [float(i % 7), "n/a"], "b": [0.5, 1.5]}, "outputs": {"y": [1, 1]},
    } for i in range(20)]  # fmt: skip
    JsonLinesSink(tmp_path).write(records)
    timeline = drift_timeline(
        model="m", version=1, reference=(reference, profile({"y": np.ones(10)})),
        edges=[NOW - timedelta(hours=1), NOW], predictions=tmp_path,
    )  # fmt: skip
    (window,) = timeline.windows
    assert window.problem == "" and window.inputs is not None
    assert [c.column for c in window.inputs.columns] == ["a", "b"]
