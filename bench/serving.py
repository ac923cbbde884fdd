"""Inference server benchmark: `modelyard serve` under `wrk`, against calling the model directly
and against MLServer 1.7.1 serving the same model in the same run.

    python bench/serving.py [--seconds 8] [--out bench/results/serving.json] [--omp-threads 1]
                            [--no-pin] [--peer mlserver|none] [--peer-only] [--rounds 3]
                            [--auth-only] [--skip transports|tensors|startup ...]

About half an hour at the defaults; needs `wrk` (apt-get install wrk). In a fresh temporary home it
logs a scikit-learn HistGradientBoostingClassifier and a small torch MLP (20 float32 features
each), serves each with `modelyard serve NAME@production` in its own process and drives it with
`wrk` (1 thread, one open connection per concurrent client) at concurrency 1, 8 and 64 with 1-row
and 100-row requests. Where `taskset` exists the server runs on core 0 and wrk on core 1. Then
hgb is served twice more, open and with bearer tokens (`MODELYARD_AUTH=true`), and the two are
driven in turns to give the token check's cost as a ratio (`--auth-only` runs just that).
Last, `bench/serving_peer.py` serves hgb with modelyard and with MLServer at once, pinned and
unpinned, and sets their req/s, p99 and CPU per request side by side (`--peer none` skips it,
`--peer-only` runs only it): the issue's goal is read there. Then, unless `--skip`ped, the other
serving benches, each printing its own table (see their docstrings), all in the one JSON:
`transports` (bench/serving_transports.py: hgb as JSON, binary HTTP and gRPC, 1 and 64 rows, 64
clients), `tensors` (bench/serving_tensors.py: 64 x 3 x 224 x 224 FP32 through each transport)
and `startup` (bench/serving_startup.py: process start to first answer, and /explain against
shap in-process), with at most 5 s per timed case and `--rounds` timed starts.

Reading the table: `req/s` and the latency percentiles are wrk's; `batch rows` is the mean rows
per call of the model during the run (from /metrics); `direct rows/s` is the same model called in
this process in a tight loop on the same array, with one thread (the server gets one core), and
`ratio` is served rows/s over direct rows/s at the same request size. A direct call pays no
batching, so with 1-row requests at high concurrency the server's batches can beat it (ratio > 1).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

import modelyard  # noqa: E402
from modelyard import Settings, Yard  # noqa: E402
from tests.servers import free_port  # noqa: E402

FEATURES = 20
ROWS = (1, 100)
CONCURRENCY = (1, 8, 64)
AUTH_CONCURRENCY = (1, 64)
AUTH_ROUNDS = 5
WARMUP_S = 2
PARTS = ("transports", "tensors", "startup")  # the other bench modules this one runs too
LUA = """local file = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
"""

Predict = Callable[[np.ndarray[Any, Any]], object]


def training_data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """5,000 synthetic rows of `FEATURES` float32 features, two classes."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=5_000, n_features=FEATURES, n_informative=10, random_state=0
    )
    return x.astype(np.float32), y


def log_hgb(yard: Yard) -> Any:
    """Fit the HistGradientBoostingClassifier, log it as hgb@production, and return it."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = training_data()
    hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
    yard.log_model(hgb, name="hgb", input_example=x[:2], alias="production")
    return hgb


def request_rows() -> np.ndarray[Any, Any]:
    """The rows every request sends (its first 1 or 100)."""
    return np.random.default_rng(0).normal(size=(100, FEATURES)).round(4).astype(np.float32)


def can_pin() -> bool:
    """Whether server and wrk can each get a core of their own (taskset, 2+ cores)."""
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def train(yard: Yard) -> dict[str, Predict]:
    """Log both models as NAME@production; return how to call each directly."""
    import torch

    hgb = log_hgb(yard)
    x, y = training_data()
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2),
    )  # fmt: skip
    optimizer = torch.optim.Adam(mlp.parameters(), lr=0.01)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(100):  # full-batch steps: enough to fit, not the point
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(mlp(inputs), labels)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    mlp.eval()
    # With an input example the torch flavor saves a torch.export program (model.pt2).
    yard.log_model(mlp, name="mlp", input_example=x[:2], alias="production")

    def call_mlp(batch: np.ndarray[Any, Any]) -> object:
        with torch.inference_mode():
            return mlp(torch.from_numpy(batch)).numpy()

    return {"hgb": hgb.predict, "mlp": call_mlp}


@contextmanager
def served(
    ref: str, *, home: Path, log: Path, omp_threads: int, pin: bool, auth: bool = False,
    pids: list[int] | None = None, options: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:  # fmt: skip
    """`modelyard serve REF [OPTIONS]` in its own process (requiring bearer tokens with `auth`,
    with `extra_env` added to its environment); yields its URL once ready, stops it after. Its
    process id is appended to `pids`."""
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_AUTH": str(auth).lower(),
           **(extra_env or {})}  # fmt: skip
    # OpenMP worker threads (HGB's predict, torch's intra-op pool) spin while they wait for
    # work, and on a 2-core machine they take the core the event loop needs. Measured once
    # here, not pinned (--no-pin --omp-threads 0 against 1): hgb served 4x fewer 100-row
    # requests (205 against 821 req/s, p99 up to 700 ms) and 1-row requests from one client
    # (396 against 1,540). Pinned by taskset it makes no difference: libgomp sizes its pool
    # from the affinity mask, which is then one core.
    env.pop("OMP_NUM_THREADS", None)
    if omp_threads:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    port = free_port()
    command = [sys.executable, "-m", "modelyard", "serve", ref, "--port", str(port), *options]
    with log.open("wb") as output:
        process = subprocess.Popen(
            (["taskset", "-c", "0"] if pin else []) + command,
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    if pids is not None:
        pids.append(process.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{ref} did not start serving:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def batch_totals(url: str) -> tuple[float, float]:
    """(rows, calls) of the model so far, summed over versions, from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals = {"sum": 0.0, "count": 0.0}
    for kind, value in re.findall(r"^modelyard_batch_rows_(sum|count)\{.*\} (\S+)$", text, re.M):
        totals[kind] += float(value)
    return totals["sum"], totals["count"]


def run_wrk(url: str, script: Path, *, connections: int, seconds: int, pin: bool) -> dict[str, Any]:
    """One wrk run; its req/s, p50 and p99 (ms), and every request that did not get a 2xx."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    prefix = ["taskset", "-c", "1"] if pin else []
    out = subprocess.run(prefix + command + [url], capture_output=True, text=True, check=True)
    text = out.stdout
    socket_errors = re.search(r"Socket errors: (.*)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests": int(_find(r"(\d+) requests in", text)),
        "req_s": float(_find(r"Requests/sec:\s+([\d.]+)", text)),
        "p50_ms": _ms(_find(r"^\s+50%\s+(\S+)", text)),
        "p99_ms": _ms(_find(r"^\s+99%\s+(\S+)", text)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
    }


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return match.group(1)


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def direct_slices(
    predict: Predict, x: np.ndarray[Any, Any], *, seconds: float, pin: bool
) -> dict[int, list[float]]:
    """Calls/s of `predict` per request size in a tight loop, in five slices, on one thread
    (and core 0 when pinned), like the server."""
    import torch
    from threadpoolctl import threadpool_limits

    threads, cores = torch.get_num_threads(), os.sched_getaffinity(0)
    torch.set_num_threads(1)
    if pin:
        os.sched_setaffinity(0, {0})
    rates: dict[int, list[float]] = {}
    try:
        with threadpool_limits(1):
            for rows in ROWS:
                for _ in range(20):
                    predict(x[:rows])
                slices = []
                for _ in range(5):
                    calls, began = 0, time.perf_counter()
                    while (took := time.perf_counter() - began) < seconds / 5:
                        predict(x[:rows])
                        calls += 1
                    slices.append(calls / took)
                rates[rows] = slices
    finally:
        torch.set_num_threads(threads)
        os.sched_setaffinity(0, cores)
    return rates


def write_bodies(work: Path, x: np.ndarray[Any, Any], *, token: str = "") -> dict[int, Path]:
    """A wrk script per request size, POSTing a fixed OIP v2 body of that many rows (with
    `token` as its bearer when given)."""
    scripts = {}
    for rows in ROWS:
        body = {"inputs": [{"name": "input-0", "shape": [rows, FEATURES], "datatype": "FP32",
                            "data": x[:rows].ravel().tolist()}]}  # fmt: skip
        (work / f"body-{rows}.json").write_text(json.dumps(body))
        scripts[rows] = work / f"post-{rows}{'-auth' if token else ''}.lua"
        header = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
        scripts[rows].write_text(LUA.format(body=work / f"body-{rows}.json") + header)
    return scripts


def bench_auth(
    x: np.ndarray[Any, Any], *, work: Path, args: argparse.Namespace, pin: bool
) -> list[dict[str, Any]]:
    """hgb served twice from one home, open and with `MODELYARD_AUTH=true` (every request
    carrying a reader's bearer token), driven in turns, `AUTH_ROUNDS` rounds, so both see the
    same machine; the cost of the token check is the ratio of their median req/s."""
    from modelyard.registry import Principals

    with Yard(Settings(home=work / "home")) as yard:
        principals = Principals(yard.local_registry().database, actor="bench")
        principals.grant("bench", "reader")
        token = principals.create_token(user="bench").secret
    scripts = {False: write_bodies(work, x), True: write_bodies(work, x, token=token)}
    rows = []
    with contextlib.ExitStack() as stack:
        urls = {
            auth: stack.enter_context(served(
                "hgb@production", home=work / "home", log=work / f"hgb-auth-{auth}.log",
                omp_threads=args.omp_threads, pin=pin, auth=auth))
            for auth in (False, True)
        }  # fmt: skip
        for size, connections in itertools.product(ROWS, AUTH_CONCURRENCY):
            runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            for auth in (False, True):  # warm both
                run_wrk(f"{urls[auth]}/v2/models/hgb/infer", scripts[auth][size],
                        connections=connections, seconds=WARMUP_S, pin=pin)  # fmt: skip
            for _, auth in itertools.product(range(AUTH_ROUNDS), (False, True)):
                runs[auth].append(run_wrk(f"{urls[auth]}/v2/models/hgb/infer",
                                          scripts[auth][size], connections=connections,
                                          seconds=args.seconds, pin=pin))  # fmt: skip
            if any(run["non_2xx"] for run in runs[False] + runs[True]):
                raise RuntimeError(f"requests failed in the auth runs: {runs}")
            median = {auth: statistics.median(r["req_s"] for r in runs[auth]) for auth in runs}
            rows.append({"rows": size, "concurrency": connections,
                         "req_s_open": median[False], "req_s_auth": median[True],
                         "ratio": median[True] / median[False],
                         "p99_ms_open": statistics.median(r["p99_ms"] for r in runs[False]),
                         "p99_ms_auth": statistics.median(r["p99_ms"] for r in runs[True]),
                         "runs": {str(auth).lower(): [round(r["req_s"]) for r in runs[auth]]
                                  for auth in runs}})  # fmt: skip
            print(f"  auth rows={size} c={connections}: {rows[-1]['ratio']:.3f}", file=sys.stderr)
    check = inprocess_auth(work, token)
    for row in rows:  # the check's cost against each request's time when served open
        row["check_share"] = check["check_us"] * 1e-6 * row["req_s_open"]
    rows.append({"rows": 1, "concurrency": "in-process", **check})
    return rows


def inprocess_auth(work: Path, token: str, *, calls: int = 5000) -> dict[str, float]:
    """What the token check itself costs, free of the network's noise: a request through the
    bearer-token middleware in front of an app that answers at once, against that app alone,
    in turns (`AUTH_ROUNDS` rounds of `calls`); microseconds per request."""
    import asyncio

    from modelyard.api._serving_auth import serving_auth

    settings = Settings(home=work / "home", auth=True)
    headers = [(b"authorization", f"Bearer {token}".encode())]
    scope = {"type": "http", "method": "POST", "path": "/v2/models/hgb/infer",
             "headers": headers, "client": ("127.0.0.1", 1), "query_string": b""}  # fmt: skip
    statuses: set[int] = set()

    async def answer(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def per_call(target: Any) -> float:
        began = time.perf_counter()
        for _ in range(calls):
            await target(dict(scope), receive, send)
        return (time.perf_counter() - began) / calls * 1e6

    async def measure() -> dict[str, float]:
        guarded = serving_auth(answer, settings)
        await per_call(guarded)  # the first call verifies the token; the rest hit the cache
        times: dict[str, list[float]] = {"bare": [], "guarded": []}
        for _ in range(AUTH_ROUNDS):
            times["bare"].append(await per_call(answer))
            times["guarded"].append(await per_call(guarded))
        bare, guarded_us = (statistics.median(times[k]) for k in ("bare", "guarded"))
        return {"check_us": guarded_us - bare}

    measured = asyncio.run(measure())
    if statuses != {200}:
        raise RuntimeError(f"the token was refused in-process: {sorted(statuses)}")
    return measured


def print_auth_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\nbearer tokens on (MODELYARD_AUTH=true) against off, hgb, median of {AUTH_ROUNDS} "
        "runs each, in turns; goal: at most 5% fewer req/s"
    )
    print(f"{'rows/req':>8} {'conc':>4} {'open req/s':>10} {'auth req/s':>10} {'ratio':>6} "
          f"{'open p99':>8} {'auth p99':>8} {'check share':>11}")  # fmt: skip
    for row in rows:
        if row["concurrency"] == "in-process":
            print(f"the token check alone, in-process (cached token): {row['check_us']:.2f} us "
                  "per request; `check share` is that over each request's served time")  # fmt: skip
            continue
        print(f"{row['rows']:>8} {row['concurrency']:>4} {row['req_s_open']:>10,.0f} "
              f"{row['req_s_auth']:>10,.0f} {row['ratio']:>6.3f} {row['p99_ms_open']:>8.2f} "
              f"{row['p99_ms_auth']:>8.2f} {row['check_share']:>10.2%}")  # fmt: skip


def bench_model(
    name: str, predict: Predict, x: np.ndarray[Any, Any], *,
    work: Path, scripts: dict[int, Path], args: argparse.Namespace, pin: bool,
) -> list[dict[str, Any]]:  # fmt: skip
    """Serve `name` and run wrk at every size and concurrency; set each run against the model
    called directly, before and after serving (pooled, so that a burst of other work on the
    machine during one of them moves the median less)."""
    direct = direct_slices(predict, x, seconds=min(args.seconds, 4), pin=pin)
    rows = []
    with served(f"{name}@production", home=work / "home", log=work / f"{name}.log",
                omp_threads=args.omp_threads, pin=pin) as url:  # fmt: skip
        target = f"{url}/v2/models/{name}/infer"
        request = urllib.request.Request(target, data=(work / "body-1.json").read_bytes(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:  # raises unless 2xx
            if not json.loads(response.read()).get("outputs"):
                raise RuntimeError(f"{name} answered without outputs")
        for size, connections in itertools.product(ROWS, CONCURRENCY):
            run_wrk(target, scripts[size], connections=connections, seconds=WARMUP_S, pin=pin)
            before = batch_totals(url)
            result = run_wrk(
                target, scripts[size], connections=connections, seconds=args.seconds, pin=pin
            )
            rows_sum, calls = np.subtract(batch_totals(url), before)
            print(f"  {name} rows={size} c={connections}: {result['req_s']:,.0f} req/s",
                  file=sys.stderr)  # fmt: skip
            rows.append({"model": name, "rows": size, "concurrency": connections, **result,
                         "rows_s": result["req_s"] * size,
                         "batch_rows": rows_sum / calls if calls else None})  # fmt: skip
    after = direct_slices(predict, x, seconds=min(args.seconds, 4), pin=pin)
    for row in rows:
        slices = direct[row["rows"]] + after[row["rows"]]
        calls_s = statistics.median(slices)
        row.update(direct_calls_s=calls_s, direct_rows_s=calls_s * row["rows"],
                   ratio=row["rows_s"] / (calls_s * row["rows"]),
                   direct_slices=[round(rate, 1) for rate in slices])  # fmt: skip
    return rows


def print_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    print(f"{'model':<5} {'rows/req':>8} {'conc':>4} {'req/s':>8} {'rows/s':>9} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'batch rows':>10} {'direct rows/s':>13} {'ratio':>6}")  # fmt: skip
    for row in rows:
        batch = f"{row['batch_rows']:>10.1f}" if row["batch_rows"] else f"{'-':>10}"
        print(f"{row['model']:<5} {row['rows']:>8} {row['concurrency']:>4} {row['req_s']:>8,.0f} "
              f"{row['rows_s']:>9,.0f} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} {batch} "
              f"{row['direct_rows_s']:>13,.0f} {row['ratio']:>6.2f}")  # fmt: skip
    for row in rows:
        if row["non_2xx"] or row["socket_errors"]:
            print(f"! {row['model']} rows={row['rows']} c={row['concurrency']}: "
                  f"{row['non_2xx']} non-2xx; socket errors: {row['socket_errors']}")  # fmt: skip
    hgb = next(r for r in rows if (r["model"], r["rows"], r["concurrency"]) == ("hgb", 1, 64))
    print(f"\nhgb, 1-row requests, 64 connections: {hgb['req_s']:,.0f} req/s, p99 "
          f"{hgb['p99_ms']:.1f} ms (set against MLServer in the same run below, unless "
          "--peer none)")  # fmt: skip
    return {"req_s": hgb["req_s"], "p99_ms": hgb["p99_ms"]}


def run(
    seconds: float, *, omp_threads: int = 1, pin: bool | None = None, peer: str = "mlserver",
    peer_only: bool = False, auth_only: bool = False, rounds: int = 3,
    parts: tuple[str, ...] = PARTS,
) -> dict[str, Any]:  # fmt: skip
    """Every case (or only the auth comparison, or only the peer's), then each of `parts` that
    another bench module measures; the JSON document."""
    args = argparse.Namespace(seconds=int(seconds), omp_threads=omp_threads)
    pin = can_pin() if pin is None else pin and can_pin()
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    auth_rows: list[dict[str, Any]] = []
    if not peer_only:
        with tempfile.TemporaryDirectory(prefix="modelyard-bench-serving-") as folder:
            work = Path(folder)
            with Yard(Settings(home=work / "home")) as yard:
                predictors = train(yard)
            x = request_rows()
            scripts = write_bodies(work, x)
            rows = [] if auth_only else [
                row for name, predict in predictors.items()
                for row in bench_model(name, predict, x, work=work, scripts=scripts, args=args,
                                       pin=pin)]  # fmt: skip
            auth_rows = bench_auth(x, work=work, args=args, pin=pin)
        where = "server on core 0, wrk on core 1 (taskset)" if pin else "not pinned"
        omp = f"OMP_NUM_THREADS={omp_threads}" if omp_threads else "OMP_NUM_THREADS unset"
        print(f"{where}; server {omp}; wrk -t1, {args.seconds} s per run after {WARMUP_S} s "
              "warm-up; direct: this process, 1 thread")  # fmt: skip
    hgb = print_table(rows) if rows else None
    if auth_rows:
        print_auth_table(auth_rows)
    peers = None
    if peer == "mlserver" and not auth_only:
        import serving_peer

        pins = [True, False] if pin else [False]
        peers = serving_peer.run(seconds, rounds=rounds, omp_threads=omp_threads, pins=pins)
    others = {} if peer_only or auth_only else run_parts(
        parts, seconds=seconds, rounds=rounds, omp_threads=omp_threads, pin=pin)  # fmt: skip
    return {"environment": environment(args, pin=pin, began=began), "hgb": hgb,
            "goal": peers["goal"] if peers else None, "rows": rows, "auth": auth_rows,
            "peer": peers, **others}  # fmt: skip


def run_parts(
    parts: tuple[str, ...], *, seconds: float, rounds: int, omp_threads: int, pin: bool
) -> dict[str, Any]:
    """The other serving bench modules, each printing its table: hgb by transport (JSON,
    binary HTTP, gRPC), the 64 x 3 x 224 x 224 tensor batch, cold start and /explain."""
    import serving_startup
    import serving_tensors
    import serving_transports

    documents: dict[str, Any] = {}
    if "transports" in parts:
        documents["transports"] = serving_transports.run(seconds, omp_threads=omp_threads, pin=pin)
        serving_transports.print_table(documents["transports"])
    if "tensors" in parts:
        documents["tensors"] = serving_tensors.run(min(seconds, 5))
        print()
        serving_tensors.print_table(documents["tensors"])
    if "startup" in parts:
        documents["startup"] = serving_startup.run(min(seconds, 5), repeat=rounds)
        print()
        serving_startup.print_table(documents["startup"])
    return documents


def environment(args: argparse.Namespace, *, pin: bool, began: float) -> dict[str, Any]:
    import sklearn
    import torch

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "pinned": pin, "server_omp_threads": args.omp_threads or None,
        "seconds": args.seconds, "warmup_seconds": WARMUP_S, "wrk_threads": 1,
        "versions": {"modelyard": modelyard.__version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "torch": torch.__version__,
                     "wrk": wrk_version.split()[1] if wrk_version else None},
        "total_seconds": round(time.perf_counter() - began, 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="wrk run length per case")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serving.json")
    parser.add_argument("--omp-threads", type=int, default=1, help="server's; 0 leaves it unset")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--auth-only", action="store_true",
                        help="only the auth on/off comparison (a few minutes less)")  # fmt: skip
    parser.add_argument(
        "--peer",
        choices=("mlserver", "none"),
        default="mlserver",
        help="serve the same model with MLServer 1.7.1 too (none: skip)",
    )
    parser.add_argument("--peer-only", action="store_true", help="only the MLServer comparison")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs per server in the peer cases; starts in startup")  # fmt: skip
    parser.add_argument("--skip", action="append", choices=PARTS, default=[],
                        help="leave out that part (repeatable)")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/serving.py needs wrk on PATH: apt-get install wrk")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers are stopped too
    document = run(args.seconds, omp_threads=args.omp_threads, pin=not args.no_pin,
                   peer=args.peer, peer_only=args.peer_only, auth_only=args.auth_only,
                   rounds=args.rounds,
                   parts=tuple(part for part in PARTS if part not in args.skip))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
