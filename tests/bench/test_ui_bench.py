"""`bench/ui.py --quick --peer none` runs end to end and writes the report's rows and keys (no
timings: only that every page was timed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import service_env

ROOT = Path(__file__).resolve().parents[2]

ROW_KEYS = {
    "case",
    "ours",
    "baseline",
    "unit",
    "ratio",
    "goal",
    "met",
    "note",
    "runs",
    "baseline_runs",
    "server_ms",
    "baseline_server_ms",
}


def test_quick_run_without_peer_reports_every_page(tmp_path: Path) -> None:
    out = tmp_path / "ui.json"
    env = {**os.environ, "MODELYARD_TEST_CHROMIUM": service_env("MODELYARD_TEST_CHROMIUM"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}  # fmt: skip  # a registry of its own
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ui.py"), "--quick", "--peer", "none"]
        + ["--out", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    environment, rows = report["environment"], report["rows"]
    assert environment["quick"] is True and environment["repeat"] == 1
    assert environment["models"] == 51 and environment["versions"] == 300
    assert environment["mlflow"] == "skipped (--peer none)"
    assert [row["case"] for row in rows] == [
        f"{page}, {mode}"
        for page in ("models page (51 models)", "model page (300 versions)",
                     "version page (big:150)")
        for mode in ("cold", "warm")
    ]  # fmt: skip
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["unit"] == "ms" and row["goal"] == "< 1000 ms and >= 10x"
        assert row["baseline"] is None and row["ratio"] is None and row["met"] is None
        assert row["baseline_runs"] == [] and row["baseline_server_ms"] is None
        assert len(row["runs"]) == 1 and isinstance(row["ours"], float)
        assert isinstance(row["server_ms"], float)
        assert "answered" not in row["note"]  # every page is served (200), not timed to <body>
