"""`modelyard serve` against MLServer 1.7.1, side by side: the same HistGradientBoosting model,
the same `wrk -t1 -c64` script, in one invocation, pinned and unpinned.

    python bench/serving_peer.py [--seconds 8] [--rounds 3] [--omp-threads 1]
                                 [--out bench/results/serving_peer.json]

MLServer and mlserver-sklearn 1.7.1 are installed once into a virtualenv of their own
(`~/.cache/modelyard-bench/mlserver-venv`, `python -m venv` + pip), with this process's
scikit-learn and joblib versions so the model file loads. The model is saved for MLServer as
its docs say (`joblib.dump` to `model.joblib`, a `model-settings.json` naming
`mlserver_sklearn.SKLearnModel`, adaptive batching on with `max_batch_size` and
`max_batch_time`) and started with `mlserver start FOLDER`. Both servers run at once; wrk
drives them in turns (`--rounds` runs each), and the table gives medians and their ratios.
`bench/serving.py` runs this too (unless `--peer none`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from modelyard import Settings, Yard  # noqa: E402
from tests.servers import free_port  # noqa: E402

MLSERVER = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1"]
# uvloop 0.22 made `asyncio.get_event_loop()` raise in a fresh process, where MLServer 1.7.1's
# inference-pool worker calls it: every model load then fails ("Couldn't load model").
PEER_PINS = ["uvloop<0.22"]
VENV = Path.home() / ".cache" / "modelyard-bench" / "mlserver-venv"
MAX_BATCH_SIZE = 64  # modelyard's default
MAX_BATCH_TIME = 0.005  # seconds; MLServer waits at most this long for a batch to fill
CONNECTIONS = 64
GOAL_RATIO, GOAL_P99_MS = 5.0, 50.0


def mlserver_venv(folder: Path = VENV) -> Path:
    """The `mlserver` command of a virtualenv holding MLServer 1.7.1 (made on first use; made
    again when the pinned versions change)."""
    import joblib
    import sklearn

    wanted = [*MLSERVER, f"scikit-learn=={sklearn.__version__}", f"joblib=={joblib.__version__}",
              *PEER_PINS]  # fmt: skip
    marker = folder / "modelyard-bench.json"
    command = folder / "bin" / "mlserver"
    if command.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        return command
    shutil.rmtree(folder, ignore_errors=True)
    print(f"installing {' '.join(wanted)} into {folder} …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *wanted],
                   check=True)  # fmt: skip
    marker.write_text(json.dumps(wanted))
    return command


def mlserver_folder(work: Path, model: Any) -> Path:
    """A model repository for MLServer: `hgb/model.joblib` and its `model-settings.json`."""
    import joblib

    folder = work / "mlserver" / "hgb"
    folder.mkdir(parents=True)
    joblib.dump(model, folder / "model.joblib")
    settings = {"name": "hgb", "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
                "max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MAX_BATCH_TIME}  # fmt: skip
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder.parent


@contextmanager
def mlserver_served(
    folder: Path, command: Path, *, log: Path, pin: bool, omp_threads: int, pids: list[int]
) -> Iterator[str]:
    """`mlserver start FOLDER` on free loopback ports; yields its URL once the model is ready,
    stops the whole process group after (SIGTERM, then SIGKILL: it may linger)."""
    port = free_port()
    server = {"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
              "metrics_port": free_port()}  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(server))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER")}
    env.pop("OMP_NUM_THREADS", None)
    if omp_threads:
        env["OMP_NUM_THREADS"] = str(omp_threads)  # the same as modelyard's server gets
    with log.open("wb") as output:
        process = subprocess.Popen(
            (["taskset", "-c", "0"] if pin else []) + [str(command), "start", str(folder)],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    pids.append(process.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _answers(f"{url}/v2/models/hgb/ready"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MLServer did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its worker processes too
        process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants so far."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
    except psutil.NoSuchProcess:
        pass
    return total


def labels(url: str, body: Path) -> list[Any]:
    """The first output's data for a request body (to check both serve the same model)."""
    request = urllib.request.Request(url, data=body.read_bytes(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return list(json.loads(response.read())["outputs"][0]["data"])


def compare(
    *, seconds: int, rounds: int, omp_threads: int, pins: list[bool], work: Path,
    hgb: Any, scripts: dict[int, Path],
) -> list[dict[str, Any]]:  # fmt: skip
    """For each pinning: both servers started, wrk on each in turns; one row per request size."""
    import serving  # bench/serving.py: the served process, wrk, the request bodies

    command = mlserver_venv()
    folder = mlserver_folder(work, hgb)
    rows = []
    for pin in pins:
        pids: list[int] = []
        with contextlib.ExitStack() as stack:
            mine = stack.enter_context(serving.served(
                "hgb@production", home=work / "home", log=work / f"modelyard-peer-{pin}.log",
                omp_threads=omp_threads, pin=pin, pids=pids))  # fmt: skip
            peer = stack.enter_context(mlserver_served(
                folder, command, log=work / f"mlserver-{pin}.log", pin=pin,
                omp_threads=omp_threads, pids=pids))  # fmt: skip
            urls = {"modelyard": f"{mine}/v2/models/hgb/infer",
                    "mlserver": f"{peer}/v2/models/hgb/infer"}  # fmt: skip
            processes = dict(zip(urls, pids, strict=True))
            for size in serving.ROWS:
                body = work / f"body-{size}.json"
                answers = {name: labels(url, body) for name, url in urls.items()}
                if (
                    np.ravel(answers["modelyard"]).tolist()
                    != np.ravel(answers["mlserver"]).tolist()
                ):
                    raise RuntimeError(f"the two servers answer differently: {answers}")
                rows.append(_case(urls, processes, scripts[size], size=size, pin=pin,
                                  seconds=seconds, rounds=rounds))  # fmt: skip
    return rows


def _case(
    urls: dict[str, str], processes: dict[str, int], script: Path, *, size: int, pin: bool,
    seconds: int, rounds: int,
) -> dict[str, Any]:  # fmt: skip
    import serving

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
    for url in urls.values():  # warm both
        serving.run_wrk(url, script, connections=CONNECTIONS, seconds=serving.WARMUP_S, pin=pin)
    for _ in range(rounds):
        for name, url in urls.items():
            before = cpu_seconds(processes[name])
            run = serving.run_wrk(url, script, connections=CONNECTIONS, seconds=seconds, pin=pin)
            run["cpu_us_per_request"] = ((cpu_seconds(processes[name]) - before)
                                         / max(run["requests"], 1) * 1e6)  # fmt: skip
            runs[name].append(run)
            print(f"  peer pin={pin} rows={size} {name}: {run['req_s']:,.0f} req/s, "
                  f"p99 {run['p99_ms']:.1f} ms", file=sys.stderr)  # fmt: skip
    median = {name: {key: statistics.median(run[key] for run in runs[name])
                     for key in ("req_s", "p50_ms", "p99_ms", "cpu_us_per_request")}
              for name in runs}  # fmt: skip
    mine, peer = median["modelyard"], median["mlserver"]
    return {
        "pinned": pin, "rows": size, "concurrency": CONNECTIONS,
        "modelyard": mine, "mlserver": peer,
        "req_s_ratio": mine["req_s"] / peer["req_s"],
        "p99_ratio": peer["p99_ms"] / mine["p99_ms"],  # how many times lower ours is
        "cpu_ratio": peer["cpu_us_per_request"] / mine["cpu_us_per_request"],
        "non_2xx": {name: sum(run["non_2xx"] for run in runs[name]) for name in runs},
        "socket_errors": {name: [run["socket_errors"] for run in runs[name]
                                 if run["socket_errors"]] for name in runs},
        "runs": {name: [round(run["req_s"]) for run in runs[name]] for name in runs},
    }  # fmt: skip


def goal(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Issue 18's goal, on the unpinned 1-row case: >= 5x MLServer's req/s, p99 <= 50 ms."""
    case = next((r for r in rows if not r["pinned"] and r["rows"] == 1), None)
    if case is None:
        return None
    failed = case["non_2xx"]["modelyard"] or case["socket_errors"]["modelyard"]
    met = (case["req_s_ratio"] >= GOAL_RATIO and case["modelyard"]["p99_ms"] <= GOAL_P99_MS
           and not failed)  # fmt: skip
    return {"req_s": case["modelyard"]["req_s"], "mlserver_req_s": case["mlserver"]["req_s"],
            "ratio": case["req_s_ratio"], "p99_ms": case["modelyard"]["p99_ms"],
            "goal_ratio": GOAL_RATIO, "goal_p99_ms": GOAL_P99_MS, "met": met}  # fmt: skip


def print_rows(rows: list[dict[str, Any]], *, rounds: int) -> None:
    print(f"\nmodelyard serve against MLServer 1.7.1 (adaptive batching: max_batch_size "
          f"{MAX_BATCH_SIZE}, max_batch_time {MAX_BATCH_TIME * 1000:g} ms), hgb, wrk -t1 "
          f"-c{CONNECTIONS}, median of {rounds} runs each, in turns")  # fmt: skip
    print(f"{'pinned':>6} {'rows/req':>8} {'ours req/s':>10} {'peer req/s':>10} {'ratio':>6} "
          f"{'ours p99':>8} {'peer p99':>8} {'p99 x':>6} {'ours us/req':>11} "
          f"{'peer us/req':>11} {'cpu x':>6}")  # fmt: skip
    for row in rows:
        mine, peer = row["modelyard"], row["mlserver"]
        print(f"{'yes' if row['pinned'] else 'no':>6} {row['rows']:>8} {mine['req_s']:>10,.0f} "
              f"{peer['req_s']:>10,.0f} {row['req_s_ratio']:>6.2f} {mine['p99_ms']:>8.1f} "
              f"{peer['p99_ms']:>8.1f} {row['p99_ratio']:>6.1f} "
              f"{mine['cpu_us_per_request']:>11,.0f} {peer['cpu_us_per_request']:>11,.0f} "
              f"{row['cpu_ratio']:>6.1f}")  # fmt: skip
        for name in ("modelyard", "mlserver"):
            if row["non_2xx"][name] or row["socket_errors"][name]:
                print(f"! {name} pinned={row['pinned']} rows={row['rows']}: "
                      f"{row['non_2xx'][name]} non-2xx; socket errors: "
                      f"{row['socket_errors'][name]}")  # fmt: skip
    target = goal(rows)
    if target is not None:
        print(f"goal: unpinned, 1-row requests, {CONNECTIONS} connections: >= {GOAL_RATIO:g}x "
              f"MLServer's req/s with p99 <= {GOAL_P99_MS:g} ms: {target['ratio']:.2f}x "
              f"({target['req_s']:,.0f} against {target['mlserver_req_s']:,.0f} req/s), p99 "
              f"{target['p99_ms']:.1f} ms: {'met' if target['met'] else 'NOT met'}")  # fmt: skip


def run(
    seconds: float, *, rounds: int = 3, omp_threads: int = 1, pins: list[bool] | None = None
) -> dict[str, Any]:
    """The side-by-side comparison alone, in a temporary home; the JSON document."""
    import serving

    pins = pins if pins is not None else ([True, False] if serving.can_pin() else [False])
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-peer-") as folder:
        work = Path(folder)
        with Yard(Settings(home=work / "home")) as yard:
            hgb = serving.log_hgb(yard)
        x = serving.request_rows()
        scripts = serving.write_bodies(work, x)
        rows = compare(seconds=int(seconds), rounds=rounds, omp_threads=omp_threads, pins=pins,
                       work=work, hgb=hgb, scripts=scripts)  # fmt: skip
    print_rows(rows, rounds=rounds)
    return {"rows": rows, "goal": goal(rows), "mlserver": {
        "packages": MLSERVER, "max_batch_size": MAX_BATCH_SIZE,
        "max_batch_time": MAX_BATCH_TIME, "rounds": rounds}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="wrk run length per case")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and case")
    parser.add_argument("--omp-threads", type=int, default=1, help="both servers'; 0: unset")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serving_peer.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/serving_peer.py needs wrk on PATH: apt-get install wrk")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers are stopped too
    document = run(args.seconds, rounds=args.rounds, omp_threads=args.omp_threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
