"""`bench/store.py --quick` runs end to end and writes the report's rows and keys (no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

ROW_KEYS = {
    "case",
    "ours",
    "baseline",
    "unit",
    "ratio",
    "goal",
    "goal_on",
    "met",
    "peak_rss_mib",
    "note",
    "runs",
    "baseline_runs",
}

THROUGHPUT_GOALS = {"put": ">= 0.5x", "re-put": ">= 1x", "get": ">= 0.7x"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick run (about 10 s) shared by the tests of this module."""
    work = tmp_path_factory.mktemp("store-bench")
    out = work / "store.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "store.py"), "--quick"]
        + ["--out", str(out), "--dir", str(work)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def test_quick_run_reports_every_row(report: dict[str, Any]) -> None:
    env, rows = report["environment"], report["rows"]
    assert env["quick"] is True and env["size_mib"] == 64 and env["repeat"] == 1
    assert set(env["peers"]) == {"DVC", "restic", "modelyard CLI"}
    assert all("unavailable" in peer for peer in env["peers"].values())
    assert all(set(row) == ROW_KEYS for row in rows)
    cases = [row["case"] for row in rows]
    same, fresh = (
        "(same file: stat-cache hit)",
        "(same bytes, new file: every byte read and hashed)",
    )
    assert cases[:8] == [
        "put safetensors 64 MiB",
        f"re-put safetensors 64 MiB {same}",
        f"re-put safetensors 64 MiB {fresh}",
        "get safetensors 64 MiB",
        "put random .bin 64 MiB",
        f"re-put random .bin 64 MiB {same}",
        f"re-put random .bin 64 MiB {fresh}",
        "get random .bin 64 MiB",
    ]
    for row in rows[:8]:
        assert row["goal"] == THROUGHPUT_GOALS[row["case"].split()[0]]
        assert row["unit"] == "MB/s" and isinstance(row["met"], bool)
    for fmt in ("safetensors", "pt"):
        label = f"10 variants, {fmt}"
        assert f"{label}: stored / one model" in cases
        for peer in ("DVC", "restic"):
            assert f"{label}: stored / one model, vs {peer}" in cases
            assert f"{label}: wall time, vs {peer}" in cases
            assert f"{label}: wall time as CLI calls, vs {peer}" in cases


def test_skipped_peers_are_rows_that_say_so(report: dict[str, Any]) -> None:
    rows = report["rows"]
    peer_rows = [row for row in rows if ", vs " in row["case"]]
    assert len(peer_rows) == 12
    for row in peer_rows:
        assert row["baseline"] is None and row["ratio"] is None and row["met"] is None
        assert "skipped" in row["note"]
        assert (row["ours"] is None) == ("as CLI calls" in row["case"])
    (safetensors,) = [
        r for r in rows if r["case"] == "10 variants, safetensors: stored / one model"
    ]
    assert safetensors["goal"] == "<= 1.5x" and safetensors["goal_on"] == "ours"
    assert isinstance(safetensors["met"], bool)
