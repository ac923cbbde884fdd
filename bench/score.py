"""Batch scoring benchmark: `Yard.score` on two local Dask workers against a single-process
loop calling the same model on the same file, and the workers' peak memory as the input grows.

    python bench/score.py [--rows 1000000] [--workers 2] [--repeat 1]
                          [--out bench/results/score.json] [--dir /tmp]

A RandomForestRegressor (100 trees, depth 12, 8 features: its predict costs real CPU) is logged
with a reference sample. Two Parquet files are written, of `rows // 10` and `rows` rows (row
groups of `rows // 40`). The baseline loads the model (`yard.load_model(ref)`), reads the large
file batch by batch with pyarrow, calls the model and writes the predictions beside the inputs
into one Parquet file: the same work as a worker, less the drift profiles, under the same thread
settings as a worker (BLAS and OpenMP held to one thread). `Yard.score` runs on the LocalCluster
it starts itself (`modelyard.scoring.local_cluster`: `workers` one-thread processes), started
here before the clock (its start-up, with the workers' imports, is reported apart, and end to
end), with partitions of `rows // 20` rows. CPU seconds are reported beside wall-clock ones:
the baseline's, the workers' per stage (`ScoreReport.cpu`) and the client's and scheduler's
process during the job, so that a run on a busy machine still shows where the time goes.
Peak RSS of each worker process is sampled every 20 ms during the job, on a fresh cluster per
file size; memory is flat when the large file's peak is within 1.3x of the small one's. Goal:
>= 1.7x the baseline's rows/s on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelyard import Settings, Yard  # noqa: E402

GOAL = 1.7
FLAT = 1.3
FEATURES = [f"x{i}" for i in range(8)]
BATCH_ROWS = 65_536


def features(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)


def log_model(yard: Yard) -> str:
    from sklearn.ensemble import RandomForestRegressor

    train = features(8000, seed=0)
    target = train.x0 * 2 - train.x1 + np.sin(train.x2 * 3)
    model = RandomForestRegressor(n_estimators=100, max_depth=12, random_state=0)
    model.fit(train, target)
    version = yard.log_model(model, name="forest", input_example=train.head(5),
                             reference_data=train.head(2000))  # fmt: skip
    return version.ref


def write_input(path: Path, rows: int, group: int) -> Path:
    with pq.ParquetWriter(path, pa.schema([(name, pa.float64()) for name in FEATURES])) as out:
        for start in range(0, rows, group):
            chunk = features(min(group, rows - start), seed=start + 1)
            out.write_table(pa.Table.from_pandas(chunk, preserve_index=False))
    return path


def baseline(yard: Yard, ref: str, source: Path, target: Path) -> tuple[float, float]:
    """Seconds and CPU seconds for one process to read, predict and write the file, batch by
    batch, with one BLAS/OpenMP thread as each worker has."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        began, cpu = time.perf_counter(), time.process_time()
        model = yard.load_model(ref)  # on the clock, as each worker's load is
        writer = None
        for batch in pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS):
            frame = batch.to_pandas()
            frame["output-0"] = model.predict(frame)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(target, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
        return time.perf_counter() - began, time.process_time() - cpu


class PeakRss:
    """Samples the RSS of some processes in a thread; `peaks` per process."""

    def __init__(self, pids: list[int], interval: float = 0.02) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.peaks = [0] * len(pids)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, process in enumerate(self.processes):
                try:
                    self.peaks[i] = max(self.peaks[i], process.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def warm() -> None:
    """Import what scoring this model needs (a worker's first partition would)."""
    import importlib

    for module in ("sklearn.ensemble", "skops.io", "pyarrow.parquet", "modelyard.scoring",
                   "modelyard.flavors._sklearn", "modelyard.monitoring"):  # fmt: skip
        importlib.import_module(module)


def distributed_run(
    yard: Yard, ref: str, source: Path, out: Path, *, workers: int, partition_rows: int
) -> dict[str, Any]:
    from distributed import Client

    from modelyard.scoring import local_cluster

    began = time.perf_counter()
    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.run(warm)  # imports, as the baseline's process has them: start-up, not the job
        startup = time.perf_counter() - began
        pids = list(client.run(os.getpid).values())
        processes = [psutil.Process(pid) for pid in pids]
        here = psutil.Process()
        before = [_cpu(process) for process in (here, *processes)]
        with PeakRss(pids) as rss:
            report = yard.score(ref, source, out, scheduler=cluster.scheduler_address,
                                partition_rows=partition_rows, overwrite=True)  # fmt: skip
        after = [_cpu(process) for process in (here, *processes)]
    used = [end - start for start, end in zip(before, after, strict=True)]
    return {
        "rows": report.rows,
        "parts": len(report.parts),
        "seconds": report.seconds,
        "startup_seconds": startup,
        "rows_per_second": report.rows_per_second,
        "worker_peak_rss_mib": [peak / (1 << 20) for peak in rss.peaks],
        "drifted": None if report.drift is None else report.drift.drifted,
        "client_scheduler_cpu_seconds": used[0],
        "worker_cpu_seconds": used[1:],
        "stage_cpu_seconds": report.cpu,
    }


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def run(rows: int, workers: int, repeat: int, folder: Path) -> dict[str, Any]:
    yard = Yard(Settings(home=folder / "home"))
    ref = log_model(yard)
    sizes = {"small": rows // 10, "large": rows}
    group = max(1, rows // 40)
    files = {name: write_input(folder / f"{name}.parquet", count, group)
             for name, count in sizes.items()}  # fmt: skip
    base = [baseline(yard, ref, files["large"], folder / "baseline.parquet") for _ in range(repeat)]
    seconds, cpu = min(base)  # the fastest of `repeat`, as for yard.score below
    results: dict[str, Any] = {"baseline": {"rows": rows, "seconds": seconds, "cpu_seconds": cpu}}
    results["baseline"]["rows_per_second"] = rows / results["baseline"]["seconds"]
    for name, source in files.items():
        runs = [
            distributed_run(
                yard,
                ref,
                source,
                folder / f"out-{name}",
                workers=workers,
                partition_rows=max(1, rows // 20),
            )  # fmt: skip
            for _ in range(repeat)
        ]
        results[name] = min(runs, key=lambda r: r["seconds"]) if repeat > 1 else runs[0]
    large, small = results["large"], results["small"]
    results["speedup"] = large["rows_per_second"] / results["baseline"]["rows_per_second"]
    end_to_end = large["seconds"] + large["startup_seconds"]
    results["speedup_with_startup"] = results["baseline"]["seconds"] / end_to_end
    results["memory_ratio"] = max(large["worker_peak_rss_mib"]) / max(small["worker_peak_rss_mib"])
    yard.close()
    return results


def table(results: dict[str, Any], workers: int) -> str:
    base, small, large = results["baseline"], results["small"], results["large"]
    lines = [
        f"{'run':<34} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'peak RSS/worker':>16}",
        f"{'single-process loop':<34} {base['rows']:>10,} {base['seconds']:>8.2f} "
        f"{base['rows_per_second']:>10,.0f} {'':>16}",
    ]
    for label, row in ((f"yard.score, {workers} workers, 1/10 input", small),
                       (f"yard.score, {workers} workers", large)):  # fmt: skip
        peak = "/".join(f"{p:.0f}" for p in row["worker_peak_rss_mib"])
        lines.append(f"{label:<34} {row['rows']:>10,} {row['seconds']:>8.2f} "
                     f"{row['rows_per_second']:>10,.0f} {peak + ' MiB':>16}")  # fmt: skip
    lines += [
        f"speedup: {results['speedup']:.2f}x (goal >= {GOAL}x); with the LocalCluster's "
        f"start-up ({large['startup_seconds']:.1f} s): {results['speedup_with_startup']:.2f}x",
        f"worker peak RSS, 10x input: {results['memory_ratio']:.2f}x the 1/10 input's "
        f"(flat: <= {FLAT}x)",
        f"CPU seconds: baseline {base['cpu_seconds']:.1f}; workers "
        f"{'+'.join(f'{c:.1f}' for c in large['worker_cpu_seconds'])} = "
        f"{sum(large['worker_cpu_seconds']):.1f} (by stage: "
        + ", ".join(f"{k} {v:.1f}" for k, v in large["stage_cpu_seconds"].items())
        + f"); client and scheduler {large['client_scheduler_cpu_seconds']:.1f}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/score.json")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-score-", dir=args.dir) as folder:
        results = run(args.rows, args.workers, args.repeat, Path(folder))
    print(table(results, args.workers))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "workers": args.workers,
            "goal_speedup": GOAL, "flat_memory_ratio": FLAT}  # fmt: skip
    args.out.write_text(json.dumps({**meta, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
