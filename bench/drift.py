"""Drift benchmark: modelyard's profile + `detect_drift` against NannyML and Evidently on identical
rows, and modelyard alone on every input type at 100k and 1M rows.

    python bench/drift.py [--rows 100000] [--type-rows 100000 1000000] [--repeat 5] [--no-peers]
                          [--out bench/results/drift.json]

Two datasets, each a reference and a shifted window of `--rows` rows and 25 columns:

- `own`: `frame()`, 20 normal columns and 5 categorical ones of 12 levels (NumPy strings, so
  pandas 3's `str` dtype); every other column of each kind is shifted;
- `issue` (issue 22): `issue_frame()`, 20 float64 columns of four shapes and 5 categorical ones as
  pandas `object` strings of 5, 10, 25, 50 and 100 levels; 6 numeric and 3 categorical columns
  move (one of these gains a level the reference never saw), the other 16 do not.

For each, modelyard is timed on the frames in this process (reference profile, window profile
+ `detect_drift`, and both: the total, which is what the peers do), and each peer case of
`drift_peers.py` runs in its own virtualenv, as a subprocess, on the same frames written once
to Parquet, timed inside the peer around its fit + calculate only. Ratios are a peer's seconds
over each modelyard row's (higher: modelyard faster; the goals use the total). Each tool's
drifted columns are scored against the planted truth. Then the `issue` table in every input
type (`input_tables()`): window profile + `detect_drift` at each `--type-rows`, with its peak
memory. A type that fails is recorded with its error, not dropped; so is a peer that cannot be
installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drift_data import frame, frame_truth, input_tables, issue_frame, issue_truth  # noqa: E402
from drift_peers import CASES, PeerRun, compare, describe, find_peers  # noqa: E402
from measuring import PEAK_RSS_RESETS, measure  # noqa: E402

from modelyard.monitoring import Profile, detect_drift, profile  # noqa: E402

GOAL_NANNYML, GOAL_EVIDENTLY, GOAL_1M_S, GOAL_MEMORY = 5.0, 100.0, 1.0, 2.0
"""Goals (issue 22): total >= 5x NannyML with one chunk and >= 100x Evidently, 1M rows of any
input type <= 1 s, and memory flat: the 1M-row peak <= 2x the 100k-row peak."""


# ---- measuring ------------------------------------------------------------------------------


def timed(repeat: int, action: Callable[[], object]) -> list[float]:
    """Seconds of each of `repeat` runs."""
    gc.collect()
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        runs.append(time.perf_counter() - began)
    return runs


def traced_peak(action: Callable[[], object]) -> float:
    """Peak traced allocation (Python objects and NumPy arrays) of one run, in MiB."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def drifted(reference: Profile, current: Any) -> list[str]:
    """modelyard's drifted columns: the window profiled against the reference, default tests."""
    window = profile(current, reference=reference, seed=0)
    return [c.column for c in detect_drift(reference, window).columns if c.drifted]


def verdict(found: list[str] | None, truth: list[str]) -> dict[str, Any] | None:
    """A tool's drifted columns against the planted truth."""
    if found is None:
        return None
    return {
        "drifted": [name for name in truth if name in found]
        + [name for name in found if name not in truth],
        "found": [name for name in truth if name in found],
        "missed": [name for name in truth if name not in found],
        "false_alarms": [name for name in found if name not in truth],
    }


# ---- the runs -------------------------------------------------------------------------------


def run_dataset(
    name: str,
    reference_data: pd.DataFrame,
    current: pd.DataFrame,
    truth: list[str],
    *,
    repeat: int,
    pythons: dict[str, Path | str] | None,
) -> dict[str, Any]:
    """modelyard's three rows and every peer case on one reference and window."""

    def reference_only() -> Profile:
        return profile(reference_data, seed=0)

    reference = reference_only()

    def window_only() -> list[str]:
        return drifted(reference, current)

    def total() -> list[str]:
        return drifted(reference_only(), current)

    # untimed, as the peers' imports are: the first detect_drift imports scipy.stats
    verdicts = {"modelyard": verdict(window_only(), truth)}
    rows: list[dict[str, Any]] = []
    for case, action in (
        ("modelyard reference profile", reference_only),
        ("modelyard window profile + detect", window_only),
        ("modelyard total", total),
    ):
        runs = timed(repeat, action)
        rows.append({"case": case, "seconds": statistics.median(runs), "runs": runs})
    peers: list[PeerRun] = []
    if pythons is not None:
        with tempfile.TemporaryDirectory(prefix="modelyard-drift-") as folder:
            paths = Path(folder) / "reference.parquet", Path(folder) / "current.parquet"
            reference_data.to_parquet(paths[0], index=False)
            current.to_parquet(paths[1], index=False)
            peers = compare(pythons, *paths, repeat=repeat)
    for peer in peers:
        rows.append(
            {
                "case": peer.label,
                "short": peer.short,
                "seconds": peer.seconds,
                "runs": peer.runs,
                "error": peer.error,
                **peer.detail,
            }
        )
        verdicts[peer.label] = verdict(peer.drifted, truth)
    for row in rows[:3]:
        row["ratios"] = {
            peer.label: None if peer.seconds is None else peer.seconds / row["seconds"]
            for peer in peers
        }
    return {
        "dataset": name,
        "rows": len(current),
        "reference_rows": len(reference_data),
        "columns": len(current.columns),
        "dtypes": current.dtypes.astype(str).value_counts().to_dict(),
        "truth": truth,
        "timings": rows,
        "verdicts": verdicts,
    }


def run_types(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    """Window profile + `detect_drift` of the `issue` table in every input type, per size,
    against a reference of the same type (100k rows or the smallest size, untimed)."""
    reference_rows = min(100_000, min(sizes))
    references: dict[str, Profile | str] = {}
    for kind, table in input_tables(reference_rows, shifted=False, seed=1):
        references[kind] = _attempt(lambda table=table: profile(table, seed=0))
    results = []
    for rows in sizes:
        for kind, table in input_tables(rows, shifted=True, seed=2):
            results.append(_type_row(kind, rows, table, references[kind], repeat))
    return results


def _type_row(
    kind: str, rows: int, table: Any, reference: Profile | str, repeat: int
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "input": kind,
        "rows": rows,
        "seconds": None,
        "runs": [],
        "traced_peak_mib": None,
        "rss_growth_mib": None,
        "drifted": None,
        "error": None,
    }
    if isinstance(table, Exception):
        row["error"] = f"not importable: {table}"
        return row
    if isinstance(reference, str):
        row["error"] = f"reference: {reference}"
        return row
    found: list[list[str]] = []
    gc.collect()
    first = _attempt(lambda: measure(lambda: found.append(drifted(reference, table))))
    if isinstance(first, str):
        row["error"] = first
        return row
    samples = [first, *(measure(lambda: drifted(reference, table)) for _ in range(repeat - 1))]
    row["drifted"] = len(found[0])
    row["runs"] = [sample.seconds for sample in samples]
    row["seconds"] = statistics.median(row["runs"])
    row["rss_growth_mib"] = max(sample.rss_growth for sample in samples) / 2**20
    row["traced_peak_mib"] = traced_peak(lambda: drifted(reference, table))
    return row


def _attempt(action: Callable[[], Any]) -> Any:
    """`action()`, or its error as a one-line string (a type not supported yet, say)."""
    try:
        return action()
    except Exception as error:  # recorded in the table, never raised
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


# ---- goals, table, JSON ---------------------------------------------------------------------


def goals(datasets: list[dict[str, Any]], types: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals on the `issue` dataset (or the first one) and the type rows."""
    data = next((d for d in datasets if d["dataset"] == "issue"), datasets[0])
    total = next(row for row in data["timings"] if row["case"] == "modelyard total")
    lines = []
    for prefix, goal in (("NannyML", GOAL_NANNYML), ("Evidently", GOAL_EVIDENTLY)):
        ratios = {label: r for label, r in total["ratios"].items() if label.startswith(prefix)}
        known = {label: r for label, r in ratios.items() if r is not None}
        if known:  # the peer's fastest case: the hardest to beat
            label = min(known, key=lambda k: known[k])
            figure = (
                f"{known[label]:.1f}x {label} ({data['dataset']}, total {total['seconds']:.3f} s)"
            )
            met: bool | None = known[label] >= goal
        else:
            errors = [r["error"] for r in data["timings"] if r["case"].startswith(prefix)]
            figure = f"{prefix} unavailable: {errors[0]}" if errors else f"{prefix} not run"
            met = None
        lines.append({"goal": f"total >= {goal:g}x {prefix}", "figure": figure, "met": met})
    lines.append(_million_goal([t for t in types if t["rows"] == 1_000_000]))
    lines.append(_memory_goal(types))
    return lines


def _million_goal(million: list[dict[str, Any]]) -> dict[str, Any]:
    goal = f"1M rows <= {GOAL_1M_S:g} s, window profile + detect, every input type"
    if not million:
        return {"goal": goal, "figure": "no 1M-row run", "met": None}
    slow = [t for t in million if t["seconds"] is None or t["seconds"] > GOAL_1M_S]
    worst = max((t["seconds"] for t in million if t["seconds"] is not None), default=0.0)
    figure = f"{len(million) - len(slow)}/{len(million)} types within, slowest {worst:.3f} s"
    if slow:
        figure += "; over or failed: " + ", ".join(t["input"] for t in slow)
    return {"goal": goal, "figure": figure, "met": not slow}


def _peak(row: dict[str, Any]) -> float | None:
    """A type row's peak memory: the larger of the traced peak (Python objects and NumPy) and
    the RSS growth (which also sees Arrow's and Polars's own allocators)."""
    if row["traced_peak_mib"] is None:
        return None
    return float(max(row["traced_peak_mib"], row["rss_growth_mib"]))


def _memory_goal(types: list[dict[str, Any]]) -> dict[str, Any]:
    sizes = sorted({t["rows"] for t in types})
    goal = f"memory flat: peak at the largest size <= {GOAL_MEMORY:g}x the smallest's"
    if len(sizes) < 2:
        return {"goal": goal, "figure": "one size only", "met": None}
    peaks = {(t["input"], t["rows"]): _peak(t) for t in types}
    growth = {}
    for kind, rows in peaks:
        small, large = peaks[kind, rows], peaks.get((kind, sizes[-1]))
        if rows == sizes[0] and small is not None and large is not None:
            growth[kind] = large / max(small, 1e-9)
    if not growth:
        return {"goal": goal, "figure": "no type ran at both sizes", "met": None}
    grew = sorted(kind for kind, ratio in growth.items() if ratio > GOAL_MEMORY)
    figure = f"x{max(growth.values()):.1f} at most from {sizes[0]:,} to {sizes[-1]:,} rows"
    if grew:
        figure += "; grew: " + ", ".join(f"{k} x{growth[k]:.1f}" for k in grew)
    return {"goal": goal, "figure": figure, "met": not grew}


def table(datasets: list[dict[str, Any]], types: list[dict[str, Any]]) -> str:
    lines = []
    for data in datasets:
        dtypes = ", ".join(f"{n} {d}" for d, n in data["dtypes"].items())
        lines.append(
            f"{data['dataset']}: {data['rows']:,} rows x {data['columns']} columns "
            f"({dtypes}); {len(data['truth'])} columns shifted"
        )
        peers = {row["case"]: row["short"] for row in data["timings"][3:]}
        header = f"  {'case':<36} {'seconds':>8}" + "".join(
            f" {'x ' + p:>13}" for p in peers.values()
        )
        lines.append(header + f" {'found':>6} {'false':>5}")
        for row in data["timings"]:
            seconds = "n/a" if row["seconds"] is None else f"{row['seconds']:.3f}"
            line = f"  {row['case']:<36} {seconds:>8}"
            if "ratios" in row:
                line += "".join(f" {_ratio(row['ratios'].get(p)):>13}" for p in peers)
            else:
                line += " " * 14 * len(peers)
            key = "modelyard" if row["case"] == "modelyard total" else row["case"]
            scored = data["verdicts"].get(key)
            if scored is not None:
                found, false = len(scored["found"]), len(scored["false_alarms"])
                line += f" {found:>3}/{len(data['truth']):<2} {false:>5}"
            if row.get("error"):
                line += f"  unavailable: {row['error']}"
            lines.append(line)
        lines.append(f"  truth: {' '.join(data['truth'])}")
        for tool, scored in data["verdicts"].items():
            if scored is not None:
                missed, false = scored["missed"], scored["false_alarms"]
                lines.append(
                    f"  {tool}: missed {' '.join(missed) or '-'}; "
                    f"false alarms {' '.join(false) or '-'}"
                )
        lines.append("")
    if types:
        lines.append(
            f"  {'input (window profile + detect)':<32} {'rows':>9} {'seconds':>8} "
            f"{'traced MiB':>10} {'RSS MiB':>8} {'drifted':>7}"
        )
        for t in types:
            if t["error"]:
                lines.append(f"  {t['input']:<32} {t['rows']:>9,} error: {t['error']}")
                continue
            lines.append(
                f"  {t['input']:<32} {t['rows']:>9,} {t['seconds']:>8.3f} "
                f"{t['traced_peak_mib']:>10.1f} {t['rss_growth_mib']:>8.1f} "
                f"{t['drifted']:>7}"
            )
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def goal_lines(lines: list[dict[str, Any]]) -> str:
    mark = {True: "met", False: "NOT met", None: "n/a"}
    return "\n".join(f"goal: {g['goal']}: {mark[g['met']]}: {g['figure']}" for g in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--type-rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/drift.json")
    args = parser.parse_args()
    began = time.perf_counter()
    pythons = None if args.no_peers else find_peers()
    datasets = [
        run_dataset(
            name,
            build(args.rows, shifted=False, seed=1),
            build(args.rows, shifted=True, seed=2),
            truth(),
            repeat=args.repeat,
            pythons=pythons,
        )
        for name, build, truth in (("own", frame, frame_truth), ("issue", issue_frame, issue_truth))
    ]
    types = run_types(args.type_rows, args.repeat) if args.type_rows else []
    outcome = goals(datasets, types)
    print(table(datasets, types))
    print()
    print(goal_lines(outcome))
    peers = "skipped (--no-peers)" if pythons is None else describe(pythons)
    print(f"peers: {json.dumps(peers)}")
    environment = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "repeat": args.repeat,
        "peak_rss_per_run": PEAK_RSS_RESETS,
        "peers": peers,
        "peer_cases": [case.label for case in CASES],
        "seconds": time.perf_counter() - began,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"environment": environment, "goals": outcome, "datasets": datasets, "types": types}
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
