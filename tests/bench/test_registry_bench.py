"""`bench/registry.py` in a quick run without MLflow (`--no-peer`) on SQLite and PostgreSQL: every
operation is measured at both sizes and the report has its rows and keys (no timings checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import service_env

ROOT = Path(__file__).resolve().parents[2]

ROW_KEYS = {
    "database", "versions", "mode", "operation", "ms", "mlflow_ms", "speedup", "mlflow_call",
    "ratio", "mlflow_ratio", "met",
}  # fmt: skip
OPERATIONS = ["register", "resolve alias", "alias move", "search"]


def test_quick_run_without_peer_measures_both_sizes(tmp_path: Path) -> None:
    out = tmp_path / "registry.json"
    env = {**os.environ, "MODELYARD_TEST_DATABASE_URL": service_env("MODELYARD_TEST_DATABASE_URL")}
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registry.py"), "--versions", "60",
         "--baseline-versions", "20", "--other-versions", "5", "--metrics", "240",
         "--repeat", "3", "--no-peer", "--out", str(out)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(out.read_text())
    environment, rows = report["environment"], report["rows"]
    assert environment["mlflow"] == "skipped (--no-peer)"
    assert environment["metrics_per_version"] == 4 and environment["metric_values"] == 240
    assert [(r["database"], r["versions"], r["operation"]) for r in rows] == [
        (database, versions, op)
        for database in ("postgresql", "sqlite")
        for versions in (20, 60)
        for op in OPERATIONS
    ]
    for row in rows:
        assert set(row) == ROW_KEYS and row["mode"] == "in-process"
        assert row["ms"] > 0 and row["mlflow_ms"] is None and row["speedup"] is None
        assert row["ratio"] == 1.0 if row["versions"] == 20 else row["ratio"] > 0
    for database in ("sqlite", "postgresql"):
        filled = environment["filled"][database]
        assert set(filled) == {"20", "60"} and filled["60"]["mlflow"] is None
        assert filled["60"]["modelyard_search_page"] >= 0
