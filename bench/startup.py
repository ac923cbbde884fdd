"""Start-up benchmark: how long a fresh process takes to import modelyard, print the CLI's help,
list versions, and answer its first inference request under `modelyard serve`.

    python bench/startup.py [--repeat 5] [--out bench/results/startup.json] [--dir DIR]

Every figure is the median of `--repeat` fresh subprocesses, after one untimed warm-up run (which
fills the page cache and the bytecode caches; its time is kept in the JSON as `first_s`). A second
pass runs each case under `python -X importtime` and sums each top-level package's own import time,
so the table that follows shows who pays for the start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "iris"
BODY = json.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [0.1] * 4}]}
).encode()


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]  # after the interpreter or entry point: see `command`
    goal_s: float
    entry_point: bool  # run `modelyard ARGV` (the console script) rather than `python ARGV`
    serve: bool = False


CASES = [
    Case("import modelyard", ["-c", "import modelyard"], 0.15, entry_point=False),
    Case("modelyard --help", ["--help"], 0.5, entry_point=True),
    Case("modelyard versions list", ["versions", "list", MODEL], 0.5, entry_point=True),
    Case("modelyard serve: first answer", ["serve", MODEL], 3.0, entry_point=True, serve=True),
]


def command(case: Case, *, importtime: bool = False) -> list[str]:
    if importtime:  # the console script cannot take -X; `python -m modelyard` runs the same app
        prefix = [sys.executable, "-X", "importtime"]
        return [*prefix, *(["-m", "modelyard"] if case.entry_point else []), *case.argv]
    if case.entry_point:
        return [str(BIN / "modelyard"), *case.argv]
    return [sys.executable, *case.argv]


def register_model(home: Path) -> None:
    """One scikit-learn classifier on 4 features, registered in a fresh home (in a subprocess, so
    this process stays as light as the ones it measures)."""
    script = f"""
import numpy as np
from sklearn.linear_model import LogisticRegression
from modelyard import Settings, Yard
rng = np.random.default_rng(0)
X = rng.normal(size=(200, 4))
model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
with Yard(Settings(home={str(home)!r})) as yard:
    yard.log_model(model, name={MODEL!r}, input_example=X[:5])
"""
    subprocess.run([sys.executable, "-c", script], check=True, env=environment(home))


def environment(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    return {**keep, "MODELYARD_HOME": str(home)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answered(url: str) -> bool:
    request = urllib.request.Request(url, data=BODY, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(case: Case, home: Path, *, importtime: bool = False) -> tuple[float, float, str]:
    """Seconds from the process's start to its exit (or, for serve, to its first 200 answer),
    the CPU seconds the process used (for serve, until it stopped), and its stderr."""
    env = environment(home)
    cpu = children_cpu()
    if not case.serve:
        began = time.perf_counter()
        done = subprocess.run(command(case, importtime=importtime), env=env, capture_output=True)
        elapsed = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"{case.name} failed: {done.stderr.decode()[-2000:]}")
        return elapsed, children_cpu() - cpu, done.stderr.decode()
    elapsed, stderr = serve_once(case, env, importtime=importtime)
    return elapsed, children_cpu() - cpu, stderr


def serve_once(case: Case, env: dict[str, str], *, importtime: bool) -> tuple[float, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"
    with tempfile.TemporaryFile() as log:
        began = time.perf_counter()
        argv = [*command(case, importtime=importtime), "--port", str(port)]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while not answered(url):
                if process.poll() is not None or time.perf_counter() - began > 120:
                    log.seek(0)
                    raise RuntimeError(f"serve did not answer: {log.read().decode()[-2000:]}")
                time.sleep(0.02)
            elapsed = time.perf_counter() - began
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        log.seek(0)
        return elapsed, log.read().decode(errors="replace")


def import_costs(stderr: str) -> dict[str, float]:
    """Seconds of own import time per top-level package, from `-X importtime` output."""
    costs: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        costs[name.strip().split(".")[0]] += int(own) / 1e6
    return dict(sorted(costs.items(), key=lambda item: -item[1]))


def measure(case: Case, home: Path, repeat: int) -> dict[str, Any]:
    first, _, _ = run_once(case, home)
    runs, cpus = zip(*(run_once(case, home)[:2] for _ in range(repeat)), strict=True)
    _, _, stderr = run_once(case, home, importtime=True)
    median = statistics.median(runs)
    return {
        "case": case.name, "median_s": median, "goal_s": case.goal_s,
        "met": median < case.goal_s, "cpu_s": statistics.median(cpus), "first_s": first,
        "runs_s": list(runs), "imports_s": import_costs(stderr),
    }  # fmt: skip


def print_tables(rows: list[dict[str, Any]], top: int) -> None:
    print(f"{'case':<32} {'median s':>9} {'goal s':>7}  met  {'cpu s':>6}  runs")
    for row in rows:
        spread = f"{min(row['runs_s']):.2f}-{max(row['runs_s']):.2f}"
        met = "yes" if row["met"] else "NO"
        print(f"{row['case']:<32} {row['median_s']:>9.3f} {row['goal_s']:>7.2f}  {met:<4}"
              f"{row['cpu_s']:>6.2f}  {spread}")  # fmt: skip
    for row in rows:
        print(f"\n{row['case']}: own import time by top-level package (-X importtime, one run)")
        for name, seconds in list(row["imports_s"].items())[:top]:
            print(f"  {name:<28} {seconds:7.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--top", type=int, default=12, help="Packages shown per case.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    parser.add_argument("--dir", type=Path, default=None, help="Where the temporary home goes.")
    args = parser.parse_args()
    began = time.perf_counter()
    out = args.out.resolve()
    work = Path(tempfile.mkdtemp(prefix="modelyard-startup-", dir=args.dir))
    os.chdir(work)  # so that `python -c` imports the installed package, not one in the cwd
    try:
        register_model(work / "home")
        rows = [measure(case, work / "home", args.repeat) for case in CASES]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_tables(rows, args.top)
    environment = {
        "python": platform.python_version(), "cpus": os.cpu_count(), "repeat": args.repeat,
        "platform": platform.platform(), "total_s": round(time.perf_counter() - began, 1),
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": environment, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
