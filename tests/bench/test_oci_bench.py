"""`bench/oci.py --quick` runs end to end against real registries and writes the report's rows
(no timings checked: only the shape, and that modelyard sent fewer bytes than ORAS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import service_env

ROOT = Path(__file__).resolve().parents[2]

ROW_KEYS = {"case", "ours", "baseline", "unit", "ratio", "goal", "met", "note", "runs",
            "baseline_runs"}  # fmt: skip


def test_quick_run_sends_fewer_bytes_than_oras(tmp_path: Path) -> None:
    out = tmp_path / "oci.json"
    env = {**os.environ, "MODELYARD_TEST_DOCKER_REGISTRY":
           service_env("MODELYARD_TEST_DOCKER_REGISTRY")}  # fmt: skip
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "oci.py"),
            "--quick",
            "--oras-python",
            sys.executable,
            "--out",
            str(out),
            "--dir",
            str(tmp_path),
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    environment, rows = report["environment"], report["rows"]
    assert environment["quick"] is True and environment["variants"] == 3
    assert environment["oras"]["python"] == sys.executable
    assert [row["case"] for row in rows] == [
        "push 3 variants: bytes sent",
        "push 3 variants: registry storage",
        "push 3 variants: wall time",
        "pull 3 variants: wall time",
        "pull 3 variants: bytes received",
    ]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["ours"] > 0 and row["baseline"] > 0
    sent = rows[0]
    assert len(sent["runs"]) == len(sent["baseline_runs"]) == 3
    assert sent["ours"] < sent["baseline"] and sent["met"] is True
    assert len(rows[2]["runs"]) == len(rows[3]["baseline_runs"]) == 3
