"""`bench/drift.py --no-peers` on tiny tables runs end to end and writes the report's shape, with
modelyard finding exactly the planted columns of both datasets (no timings are checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TYPES = [
    "NumPy 2-D float64",
    "dict of NumPy (U strings)",
    "pandas object",
    "pandas category",
    "pandas string[pyarrow]",
    "pandas str",
    "pandas Int64 (nullable)",
    "pandas boolean",
    "pandas datetime64[ns]",
    "pyarrow Table",
    "polars DataFrame",
]
TYPE_KEYS = {"input", "rows", "seconds", "runs", "traced_peak_mib", "rss_growth_mib", "drifted",
             "error"}  # fmt: skip


def test_tiny_run_without_peers_reports_every_case(tmp_path: Path) -> None:
    out = tmp_path / "drift.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "drift.py"), "--rows", "20000"]
        + ["--type-rows", "1000", "3000", "--repeat", "1", "--no-peers", "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    assert report["environment"]["peers"] == "skipped (--no-peers)"
    own, issue = report["datasets"]
    assert (own["dataset"], issue["dataset"]) == ("own", "issue")
    assert issue["dtypes"] == {"float64": 20, "object": 5}
    assert issue["truth"] == [f"num_{i}" for i in range(6)] + ["cat_0", "cat_2", "cat_3"]
    for data in (own, issue):
        assert data["rows"] == data["reference_rows"] == 20_000 and data["columns"] == 25
        cases = [row["case"] for row in data["timings"]]
        assert cases == [
            "modelyard reference profile",
            "modelyard window profile + detect",
            "modelyard total",
        ]
        assert all(row["ratios"] == {} and row["seconds"] > 0 for row in data["timings"])
        assert list(data["verdicts"]) == ["modelyard"]
        scored = data["verdicts"]["modelyard"]
        assert scored["drifted"] == scored["found"] == data["truth"]
        assert scored["missed"] == scored["false_alarms"] == []
    types = report["types"]
    assert [(t["input"], t["rows"]) for t in types] == [
        (kind, rows) for rows in (1000, 3000) for kind in TYPES
    ]
    for row in types:
        assert set(row) == TYPE_KEYS
        assert (row["error"] is None) == (row["seconds"] is not None)
    goals = [line["goal"] for line in report["goals"]]
    assert goals[:2] == ["total >= 5x NannyML", "total >= 100x Evidently"]
    assert [line["met"] for line in report["goals"][:3]] == [None, None, None]  # no peers, no 1M
