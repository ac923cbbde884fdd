"""HTTP layers for `modelyard serve`, measured on this machine: the same app on each candidate.

    python bench/serving_layers.py [--seconds 6] [--rounds 2] [--out FILE.json]
    python bench/serving_layers.py --profile [--seconds 8]

Two apps, each served in a process of its own and driven by `wrk -t1 -c64` with the 1-row hgb
request of `bench/serving.py`, unpinned:

- **constant**: an ASGI app (or RSGI, for granian's own interface) answering a fixed OIP
  response: the layer's ceiling;
- **hgb**: the real inference app (`create_inference_app` for hgb@production), the full path.

Layers: uvicorn with httptools and uvloop (what `modelyard serve` ran on before), granian (ASGI,
and RSGI for the constant), and the lean HTTP/1.1 server of `modelyard.api._http_server`
(httptools + uvloop, ASGI without a middleware chain). Each row gives req/s, p99, the server's
CPU time per request and the ratio of req/s to uvicorn's for the same app, run in turns.

`--profile` serves hgb on the lean server in this process under cProfile (the main thread's
CPU time, `time.thread_time`) and prints where a request's time goes, grouped by stage.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.servers import free_port  # noqa: E402

CONSTANT = (b'{"model_name":"hgb","model_version":"1","outputs":[{"name":"output-0",'
            b'"datatype":"INT64","shape":[1],"data":[1]}]}')  # fmt: skip
CASES = [("constant", "uvicorn"), ("constant", "granian-asgi"), ("constant", "granian-rsgi"),
         ("constant", "lean"), ("hgb", "uvicorn"), ("hgb", "granian-asgi"),
         ("hgb", "lean")]  # fmt: skip
STAGES = {  # where a function's own time goes, by the file it is in
    "shutdown (not per request)": ("_pool.py:stop",),
    "HTTP (parse, dispatch, write)": ("_http.py", "httptools", "uvloop"),
    "inference app (routing, body)": ("_inference.py",),
    "JSON decode + checks": ("_codecs.py:", "_signatures.py", "orjson.loads", "_runner.py"),
    "data plane, batcher hand-off": ("_dataplane.py", "_batching.py", "_pool.py", "futures",
                                     "asyncio", "events.py", "base_events"),
    "metrics": ("prometheus_client", "_metrics.py", "_traffic.py"),
    "access log": ("logging", "_server_log.py", "TextIOWrapper"),
    "encode": ("orjson.dumps", "encode"),
    "builtins (len, dict.get, …: every stage)": ("<built-in", "<method"),
}  # fmt: skip


async def constant_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every request with `CONSTANT` (and take part in the lifespan)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": CONSTANT})


class ConstantRsgi:
    """The constant answer over granian's RSGI."""

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        await protocol()
        protocol.response_bytes(200, [("content-type", "application/json")], CONSTANT)


constant_rsgi = ConstantRsgi()


def hgb_app() -> Any:
    """The inference app for hgb@production in `MODELYARD_HOME` (a factory, for granian)."""
    from modelyard import Settings
    from modelyard.api._serving_wiring import create_inference_app

    return create_inference_app(Settings(), ["hgb@production"])


def child(app_name: str, layer: str, port: int) -> None:
    """Serve `app_name` on `layer` at `port` in this process until SIGTERM."""
    from modelyard import Settings
    from modelyard.api._listening import listen
    from modelyard.api._server_log import access_logged, log_to_stderr

    settings = Settings()
    log_to_stderr(settings.server_log_level)
    app = constant_asgi if app_name == "constant" else hgb_app()
    listener = listen("127.0.0.1", port)
    if layer == "lean":
        from modelyard.api._http_server import run_lean

        run_lean(app, listener=listener, settings=settings)
    else:
        from modelyard.api._running import run

        level = settings.server_log_level
        run(access_logged(app, level), listener=listener, log_level=level)


def command(app_name: str, layer: str, port: int) -> list[str]:
    if layer.startswith("granian"):
        interface = layer.split("-")[1]
        target = {("constant", "asgi"): "serving_layers:constant_asgi",
                  ("constant", "rsgi"): "serving_layers:constant_rsgi",
                  ("hgb", "asgi"): "serving_layers:hgb_app"}[(app_name, interface)]  # fmt: skip
        factory = ["--factory"] if app_name == "hgb" else []
        return [sys.executable, "-m", "granian", "--interface", interface, "--loop", "uvloop",
                "--no-ws", "--log-level", "warning", "--port", str(port), *factory,
                "--working-dir", str(ROOT / "bench"), target]  # fmt: skip
    return [sys.executable, __file__, "--child", app_name, layer, str(port)]


@contextmanager
def server(app_name: str, layer: str, *, home: Path, log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    # No access log on any layer (granian has none by default): the layers, not logging.
    env = {**os.environ, "MODELYARD_HOME": str(home), "OMP_NUM_THREADS": "1",
           "MODELYARD_SERVER_LOG_LEVEL": "warning"}  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command(app_name, layer, port), env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    import serving

    url = f"http://127.0.0.1:{port}/v2/models/hgb/infer"
    try:
        deadline = time.monotonic() + 180
        while not _answers(url, home.parent / "body-1.json"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{layer} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        serving.run_wrk(url, home.parent / "post-1.lua", connections=64, seconds=2, pin=False)
        yield url, process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(url: str, body: Path) -> bool:
    import urllib.request

    request = urllib.request.Request(url, data=body.read_bytes(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run(seconds: float, *, rounds: int = 2) -> dict[str, Any]:
    """Every case, `rounds` times in turns (each server started afresh); the JSON document."""
    import serving
    import serving_peer

    from modelyard import Settings, Yard

    runs: dict[tuple[str, str], list[dict[str, Any]]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-layers-") as folder:
        work = Path(folder)
        with Yard(Settings(home=work / "home")) as yard:
            serving.log_hgb(yard)
        serving.write_bodies(work, serving.request_rows())
        for app_name, layer in [case for _ in range(rounds) for case in CASES]:
            with server(app_name, layer, home=work / "home",
                        log=work / f"{app_name}-{layer}.log") as (url, pid):  # fmt: skip
                before = serving_peer.cpu_seconds(pid)
                result = serving.run_wrk(url, work / "post-1.lua", connections=64,
                                         seconds=int(seconds), pin=False)  # fmt: skip
                result["cpu_us_per_request"] = ((serving_peer.cpu_seconds(pid) - before)
                                                / max(result["requests"], 1) * 1e6)  # fmt: skip
            runs[(app_name, layer)].append(result)
            print(f"  {app_name} on {layer}: {result['req_s']:,.0f} req/s", file=sys.stderr)
    rows = []
    for (app_name, layer), results in runs.items():
        row = {"app": app_name, "layer": layer, "runs": [round(r["req_s"]) for r in results],
               "non_2xx": sum(r["non_2xx"] for r in results)}  # fmt: skip
        for key in ("req_s", "p50_ms", "p99_ms", "cpu_us_per_request"):
            row[key] = statistics.median(r[key] for r in results)
        rows.append(row)
    for row in rows:
        base = next(r for r in rows if r["app"] == row["app"] and r["layer"] == "uvicorn")
        row["ratio"] = row["req_s"] / base["req_s"]
    print_rows(rows, rounds=rounds)
    return {"rows": rows, "rounds": rounds, "seconds": seconds}


def print_rows(rows: list[dict[str, Any]], *, rounds: int) -> None:
    print(f"\nHTTP layers, wrk -t1 -c64, 1-row requests, unpinned, median of {rounds} runs")
    print(f"{'app':<9} {'layer':<13} {'req/s':>8} {'p99 ms':>7} {'us/req':>7} {'ratio':>6}")
    for row in rows:
        print(f"{row['app']:<9} {row['layer']:<13} {row['req_s']:>8,.0f} {row['p99_ms']:>7.1f} "
              f"{row['cpu_us_per_request']:>7,.0f} {row['ratio']:>6.2f}")  # fmt: skip


def profile(seconds: float) -> dict[str, float]:
    """Serve hgb on the lean server here under cProfile while wrk drives it; CPU share by
    stage (the model's own predict runs in its thread, which is not profiled)."""
    import threading

    import serving

    from modelyard import Settings, Yard
    from modelyard.api._http_server import run_lean
    from modelyard.api._listening import listen
    from modelyard.api._serving_wiring import create_inference_app

    with tempfile.TemporaryDirectory(prefix="modelyard-bench-profile-") as folder:
        work = Path(folder)
        settings = Settings(home=work / "home")
        with Yard(settings) as yard:
            serving.log_hgb(yard)
        serving.write_bodies(work, serving.request_rows())
        app = create_inference_app(settings, ["hgb@production"])
        listener = listen("127.0.0.1", 0)
        url = f"{listener.url()}/v2/models/hgb/infer"
        result: dict[str, Any] = {}

        def drive() -> None:
            while not _answers(url, work / "body-1.json"):
                time.sleep(0.2)
            result.update(serving.run_wrk(url, work / "post-1.lua", connections=64,
                                          seconds=int(seconds), pin=False))  # fmt: skip
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=drive, daemon=True).start()
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        run_lean(app, listener=listener, settings=settings)
        profiler.disable()
    stats = pstats.Stats(profiler)
    shares = {stage: 0.0 for stage in [*STAGES, "other"]}
    total = 0.0
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{function}"
        stage = next((s for s, keys in STAGES.items() if any(k in where for k in keys)), "other")
        shares[stage] += own
        total += own
    requests = max(int(result.get("requests", 0)), 1)
    print(f"\nwhere the main thread's CPU goes, hgb on the lean server, {requests:,} requests "
          f"({result.get('req_s', 0):,.0f} req/s under the profiler)")  # fmt: skip
    for stage, own in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"  {stage:<32} {own / total:>6.1%}  {own / requests * 1e6:>6.1f} us/request")
    stats.sort_stats("tottime").print_stats(20)
    return {stage: own / total for stage, own in shares.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6, help="wrk run length per case")
    parser.add_argument("--rounds", type=int, default=2, help="runs per case, in turns")
    parser.add_argument("--profile", action="store_true", help="profile the lean server instead")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serving_layers.json")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if shutil.which("wrk") is None:
        sys.exit("bench/serving_layers.py needs wrk on PATH: apt-get install wrk")
    if args.profile:
        document: dict[str, Any] = {"profile": profile(args.seconds)}
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        document = run(args.seconds, rounds=args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
