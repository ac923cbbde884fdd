"""Transport benchmark: the hgb model of `bench/serving.py` served once (with `--grpc-port`) and
driven as JSON over HTTP, binary over HTTP and gRPC, 1-row and 64-row requests, 64 clients.

    python bench/serving_transports.py [--seconds 8] [--clients 64] [--omp-threads 1] [--no-pin]
                                       [--out bench/results/serving_transports.json]

About two minutes at the defaults; needs `wrk`. Two load generators, so that every ratio sets
two transports against each other under the same client:

- `wrk` (1 thread, one connection per client) POSTs a fixed body: `json` is the OIP JSON body,
  `binary` the JSON header followed by the rows as raw little-endian FP32
  (`Inference-Header-Content-Length`, the binary data extension), the answer asked for raw too.
- A Python client in its own process (asyncio, one task per client, back to back): `json` over
  raw asyncio sockets (HTTP/1.1 keep-alive, the answer parsed with orjson), and `grpc` with
  `grpc.aio` and modelyard's own stubs (`modelyard.serving.grpc.oip_pb2*`), the rows in
  `raw_input_contents`, each client on its own channel and connection. wrk cannot speak gRPC;
  this client's JSON row gives gRPC its ratio.

Where `taskset` exists the server runs on core 0 and the load generator on core 1. `x json` is
rows/s over the JSON row of the same load generator; `x direct` over the model's own
`predict` in this process on one thread at the same request size (median of slices taken before
and after serving). Every transport's first answer is checked against that direct call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import serving  # noqa: E402

from modelyard import Settings, Yard  # noqa: E402
from tests.servers import free_port  # noqa: E402

MODEL = "hgb"
ROWS = (1, 64)
CLIENTS = 64
WARMUP_S = 2.0
BINARY_LUA = """local file = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = "{header}"
"""


def json_body(x: np.ndarray[Any, Any]) -> bytes:
    return orjson.dumps({"inputs": [{"name": "input-0", "shape": list(x.shape),
                                     "datatype": "FP32", "data": x.ravel().tolist()}]})  # fmt: skip


def binary_body(x: np.ndarray[Any, Any]) -> tuple[bytes, int]:
    """The JSON header and the rows as raw bytes after it; the header's length."""
    header = orjson.dumps({
        "inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes}}],
        "parameters": {"binary_data_output": True},
    })  # fmt: skip
    return header + x.astype("<f4").tobytes(), len(header)


def wrk_scripts(work: Path, x: np.ndarray[Any, Any]) -> dict[tuple[str, int], Path]:
    """A wrk script per (transport, rows), each POSTing a fixed body."""
    scripts = {}
    for rows in ROWS:
        (work / f"t-json-{rows}.json").write_bytes(json_body(x[:rows]))
        scripts["json", rows] = work / f"t-json-{rows}.lua"
        scripts["json", rows].write_text(serving.LUA.format(body=work / f"t-json-{rows}.json"))
        body, header = binary_body(x[:rows])
        (work / f"t-binary-{rows}.bin").write_bytes(body)
        scripts["binary", rows] = work / f"t-binary-{rows}.lua"
        scripts["binary", rows].write_text(
            BINARY_LUA.format(body=work / f"t-binary-{rows}.bin", header=header)
        )
    return scripts


# The Python load generator: run in its own process (`--drive`), it prints one JSON line.


async def _http_json(host: str, port: int, body: bytes) -> Any:
    """A keep-alive HTTP/1.1 client on raw asyncio streams: one connection, a call per await."""
    reader, writer = await asyncio.open_connection(host, port)
    request = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def call() -> Any:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
        return orjson.loads(data)["outputs"][0]["data"]

    return call


async def _grpc(host: str, port: int, x: np.ndarray[Any, Any]) -> Any:
    import grpc

    from modelyard.serving.grpc import oip_pb2, oip_pb2_grpc

    # A connection per client, as the HTTP rows have (channels share one by default).
    channel = grpc.aio.insecure_channel(f"{host}:{port}", [("grpc.use_local_subchannel_pool", 1)])
    stub = oip_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
    tensor = oip_pb2.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP32", shape=list(x.shape)
    )
    request = oip_pb2.ModelInferRequest(
        model_name=MODEL, inputs=[tensor], raw_input_contents=[x.astype("<f4").tobytes()]
    )

    async def call() -> Any:
        answer = await stub.ModelInfer(request, timeout=60)
        output = answer.outputs[0]
        dtype = {"INT64": "<i8", "INT32": "<i4", "FP32": "<f4", "FP64": "<f8"}[output.datatype]
        return np.frombuffer(answer.raw_output_contents[0], dtype).tolist()

    return call


async def _drive(kind: str, host: str, port: int, rows: int, clients: int, seconds: float) -> Any:
    x = serving.request_rows()[:rows]

    async def make() -> Any:
        return await (
            _http_json(host, port, json_body(x)) if kind == "json" else _grpc(host, port, x)
        )

    latencies: list[float] = []
    first = await (await make())()
    warm_until = time.perf_counter() + WARMUP_S
    stop = warm_until + seconds

    async def client() -> None:
        call = await make()
        while (now := time.perf_counter()) < stop:
            await call()
            if now >= warm_until:
                latencies.append(time.perf_counter() - now)

    cpu = time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    cpu = (time.process_time() - cpu) / (time.perf_counter() - warm_until + WARMUP_S)
    return {"requests": len(latencies), "req_s": len(latencies) / seconds, "client_cpu": cpu,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": float(np.percentile(latencies, 99)) * 1000, "first": first}  # fmt: skip


def python_client(
    kind: str, port: int, *, rows: int, clients: int, seconds: float, pin: bool
) -> dict[str, Any]:
    """Run the Python load generator in its own process (on core 1 when pinned)."""
    command = [sys.executable, __file__, "--drive", kind, "--port", str(port), "--rows",
               str(rows), "--clients", str(clients), "--seconds", str(seconds)]  # fmt: skip
    prefix = ["taskset", "-c", "1"] if pin else []
    out = subprocess.run(prefix + command, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} client failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def direct_rates(
    predict: serving.Predict, x: np.ndarray[Any, Any], *, seconds: float, pin: bool
) -> dict[int, list[float]]:
    """Calls/s of `predict` per request size, five slices each, one thread (core 0 if pinned)."""
    from threadpoolctl import threadpool_limits

    cores = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {0})
    rates: dict[int, list[float]] = {}
    try:
        with threadpool_limits(1):
            for rows in ROWS:
                for _ in range(20):
                    predict(x[:rows])
                rates[rows] = []
                for _ in range(5):
                    calls, began = 0, time.perf_counter()
                    while (took := time.perf_counter() - began) < seconds / 5:
                        predict(x[:rows])
                        calls += 1
                    rates[rows].append(calls / took)
    finally:
        os.sched_setaffinity(0, cores)
    return rates


def run(
    seconds: float = 8.0, *, clients: int = CLIENTS, omp_threads: int = 1, pin: bool | None = None
) -> dict[str, Any]:
    """Serve hgb once and drive every (client, transport, rows); the JSON document."""
    began = time.perf_counter()
    pin = serving.can_pin() if pin is None else pin and serving.can_pin()
    x = serving.request_rows()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-transports-") as folder:
        work = Path(folder)
        with Yard(Settings(home=work / "home")) as yard:
            hgb = serving.log_hgb(yard)
        expected = {rows: hgb.predict(x[:rows]).tolist() for rows in ROWS}
        direct = direct_rates(hgb.predict, x, seconds=min(seconds, 4), pin=pin)
        scripts = wrk_scripts(work, x)
        grpc_port = free_port()
        with serving.served(f"{MODEL}@production", home=work / "home", log=work / "serve.log",
                            omp_threads=omp_threads, pin=pin,
                            options=("--grpc-port", str(grpc_port))) as url:  # fmt: skip
            target = f"{url}/v2/models/{MODEL}/infer"
            for rows in ROWS:
                check_binary(work, target, rows, expected[rows])
                for transport in ("json", "binary"):
                    serving.run_wrk(target, scripts[transport, rows], connections=clients,
                                    seconds=int(WARMUP_S), pin=pin)  # fmt: skip
                    cpu, wall = _children_cpu(), time.perf_counter()
                    result = serving.run_wrk(
                        target, scripts[transport, rows], connections=clients,
                        seconds=int(seconds), pin=pin,
                    )  # fmt: skip
                    result["client_cpu"] = (_children_cpu() - cpu) / (time.perf_counter() - wall)
                    if result["non_2xx"] or result["socket_errors"]:
                        raise RuntimeError(f"wrk {transport} rows={rows}: {result}")
                    results.append({"client": "wrk", "transport": transport, "rows": rows,
                                    **result})  # fmt: skip
                    _progress(results[-1])
                port = int(url.rsplit(":", 1)[1])
                for transport, at in (("json", port), ("grpc", grpc_port)):
                    result = python_client(transport, at, rows=rows, clients=clients,
                                           seconds=seconds, pin=pin)  # fmt: skip
                    if result.pop("first") != expected[rows]:
                        raise RuntimeError(f"{transport} answered other labels than predict()")
                    results.append({"client": "python", "transport": transport, "rows": rows,
                                    **result})  # fmt: skip
                    _progress(results[-1])
        after = direct_rates(hgb.predict, x, seconds=min(seconds, 4), pin=pin)
    for row in results:
        row["rows_s"] = row["req_s"] * row["rows"]
        same = next(r for r in results if (r["client"], r["transport"], r["rows"])
                    == (row["client"], "json", row["rows"]))  # fmt: skip
        row["over_json"] = row["req_s"] / same["req_s"]
        row["direct_rows_s"] = (
            statistics.median(direct[row["rows"]] + after[row["rows"]]) * row["rows"]
        )
        row["over_direct"] = row["rows_s"] / row["direct_rows_s"]
    return {
        "rows": results,
        "environment": {
            "clients": clients, "seconds": seconds, "warmup_seconds": WARMUP_S, "pinned": pin,
            "server_omp_threads": omp_threads or None, "cpu_count": os.cpu_count(),
            "total_seconds": round(time.perf_counter() - began, 1),
        },
    }  # fmt: skip


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (here: the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_binary(work: Path, target: str, rows: int, expected: list[Any]) -> None:
    """POST the binary body once and check the raw answer against the direct call."""
    import urllib.request

    body = (work / f"t-binary-{rows}.bin").read_bytes()
    header = int((work / f"t-binary-{rows}.lua").read_text().rsplit('"', 2)[1])
    request = urllib.request.Request(target, data=body, headers={
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(header)})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        length = int(response.headers["Inference-Header-Content-Length"])
    output = orjson.loads(raw[:length])["outputs"][0]
    dtype = {"INT64": "<i8", "INT32": "<i4", "FP32": "<f4", "FP64": "<f8"}[output["datatype"]]
    if np.frombuffer(raw, dtype, offset=length).tolist() != expected:
        raise RuntimeError("binary HTTP answered other labels than predict()")


def _progress(row: dict[str, Any]) -> None:
    print(f"  {row['client']} {row['transport']} rows={row['rows']}: {row['req_s']:,.0f} req/s",
          file=sys.stderr)  # fmt: skip


def print_table(document: dict[str, Any]) -> None:
    env = document["environment"]
    where = "server on core 0, client on core 1" if env["pinned"] else "not pinned"
    print(f"\nhgb by transport, {env['clients']} clients, {env['seconds']:g} s per run after "
          f"{env['warmup_seconds']:g} s warm-up; {where}; x json: the same client's JSON row; "
          "client cpu: the load generator's CPU seconds per wall second")  # fmt: skip
    print(f"{'client':<6} {'transport':<9} {'rows/req':>8} {'req/s':>8} {'rows/s':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'x json':>6} {'direct rows/s':>13} {'x direct':>8} "
          f"{'client cpu':>10}")  # fmt: skip
    for row in document["rows"]:
        print(f"{row['client']:<6} {row['transport']:<9} {row['rows']:>8} {row['req_s']:>8,.0f} "
              f"{row['rows_s']:>9,.0f} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} "
              f"{row['over_json']:>6.2f} {row['direct_rows_s']:>13,.0f} "
              f"{row['over_direct']:>8.2f} {row['client_cpu']:>10.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="run length per case")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent clients")
    parser.add_argument("--omp-threads", type=int, default=1, help="server's; 0 leaves it unset")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serving_transports.json")
    parser.add_argument("--drive", choices=("json", "grpc"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:  # the Python load generator's process
        result = asyncio.run(_drive(args.drive, "127.0.0.1", args.port, args.rows,
                                    args.clients, args.seconds))  # fmt: skip
        print(json.dumps(result))
        return
    if shutil.which("wrk") is None:
        sys.exit("bench/serving_transports.py needs wrk on PATH: apt-get install wrk")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the server is stopped too
    document = run(args.seconds, clients=args.clients, omp_threads=args.omp_threads,
                   pin=not args.no_pin)  # fmt: skip
    print_table(document)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
