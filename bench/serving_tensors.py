"""Tensor serving benchmark: a batch of 64 x 3 x 224 x 224 FP32 in and out of `modelyard serve`,
as JSON, as binary HTTP (the binary data extension) and over gRPC, against the model's own call.

    python bench/serving_tensors.py [--seconds 10] [--clients 1] [--rows 64] [--no-grpc]
                                    [--out bench/results/serving_tensors.json]

About a minute at the defaults. In a fresh temporary home it logs a small torch convolution
(3 channels in, 3 out, same height and width: its answer is as large as its question, 38.5 MB
at 64 rows), serves it with `modelyard serve` in its own process (with `--grpc-port` when the
command has it) and sends the same batch back to back from `--clients` threads, each on its own
connection, for `--seconds` per transport:

- `json`: the OIP JSON body (built once, as a load generator would), the answer parsed into
  NumPy (`orjson.loads`, `np.asarray`), with Python's `http.client`;
- `binary`: the same client, the tensor as raw bytes after the JSON header
  (`Inference-Header-Content-Length`), the answer asked for as raw bytes and read with
  `np.frombuffer`;
- `binary (tritonclient)`: the same through `tritonclient.http`, a real client of the extension,
  which encodes and decodes the tensors on every call;
- `grpc (tritonclient)`: `tritonclient.grpc`, tensors in `raw_input_contents`/`raw_output_contents`.

Every transport's first answer is checked against the direct call. `direct` is the model called
in this process on the same batch, alone (the served rows share the two cores with the clients).
Ratios: rows/s over JSON's, and over the direct call's. Goal (issue 18): binary >= 5x JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import serving  # noqa: E402

import modelyard  # noqa: E402
from modelyard import Settings, Yard  # noqa: E402
from tests.servers import free_port  # noqa: E402

SHAPE = (3, 224, 224)
MODEL = "convnet"
GOAL = 5.0  # binary HTTP rows/s over JSON's
MAX_BODY = 1 << 30  # JSON of 64 images is ~200 MB; the default limit (64 MiB) refuses it

Call = Callable[[], np.ndarray[Any, Any]]


def log_model(yard: Yard) -> Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]:
    """Log the convolution as MODEL; return how to call it directly."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 3, kernel_size=3, padding=1).eval()
    example = np.zeros((2, *SHAPE), np.float32)
    yard.log_model(model, name=MODEL, input_example=example)

    def call(batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy()  # type: ignore[no-any-return]

    return call


@contextmanager
def served(home: Path, log: Path, *, grpc: bool) -> Iterator[tuple[str, int | None]]:
    """`modelyard serve MODEL` in its own process; yields (HTTP URL, gRPC port or None)."""
    grpc_port = free_port() if grpc else None
    options = () if grpc_port is None else ("--grpc-port", str(grpc_port))
    omp = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)  # the caller's, as before
    limit = {"MODELYARD_SERVE_MAX_BODY_BYTES": str(MAX_BODY)}
    with serving.served(MODEL, home=home, log=log, omp_threads=omp, pin=False, options=options,
                        extra_env=limit) as url:  # fmt: skip
        yield url, grpc_port


def has_grpc_port() -> bool:
    """Whether this `modelyard serve` takes `--grpc-port` (and the grpc extra is installed)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "modelyard", "serve", "--help"], capture_output=True, text=True
    ).stdout
    try:
        import grpc  # noqa: F401
        import tritonclient.grpc  # noqa: F401
    except ImportError:
        return False
    return "--grpc-port" in help_text


def json_call(url: str, batch: np.ndarray[Any, Any]) -> Callable[[], Call]:
    body = orjson.dumps({"inputs": [{
        "name": "input-0", "shape": list(batch.shape), "datatype": "FP32",
        "data": batch.ravel(),
    }]}, option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
    headers = {"Content-Type": "application/json"}

    def session() -> Call:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=600)

        def call() -> np.ndarray[Any, Any]:
            answer = orjson.loads(_post(connection, body, headers))["outputs"][0]
            return np.asarray(answer["data"], np.float32).reshape(answer["shape"])

        return call

    return session


def binary_call(url: str, batch: np.ndarray[Any, Any]) -> Callable[[], Call]:
    header = orjson.dumps({
        "inputs": [{"name": "input-0", "shape": list(batch.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": batch.nbytes}}],
        "parameters": {"binary_data_output": True},
    })  # fmt: skip
    body = header + batch.tobytes()
    headers = {"Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length": str(len(header))}  # fmt: skip

    def session() -> Call:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=600)

        def call() -> np.ndarray[Any, Any]:
            raw, length = _post(connection, body, headers, binary=True)
            answer = orjson.loads(raw[:length])["outputs"][0]
            return np.frombuffer(raw, "<f4", offset=length).reshape(answer["shape"])

        return call

    return session


def _post(
    connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str], *,
    binary: bool = False,
) -> Any:  # fmt: skip
    try:
        connection.request("POST", f"/v2/models/{MODEL}/infer", body=body, headers=headers)
        response = connection.getresponse()
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        # The server closed the idle connection (its keep-alive timeout ran out while this
        # client decoded a large JSON answer): connect again, as any HTTP client does.
        connection.close()
        connection.request("POST", f"/v2/models/{MODEL}/infer", body=body, headers=headers)
        response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
    if binary:
        return data, int(response.headers["Inference-Header-Content-Length"])
    return data


def triton_http_call(url: str, batch: np.ndarray[Any, Any]) -> Callable[[], Call]:
    import tritonclient.http as triton

    def session() -> Call:
        client = triton.InferenceServerClient(url.removeprefix("http://"), network_timeout=600)

        def call() -> np.ndarray[Any, Any]:
            tensor = triton.InferInput("input-0", list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch, binary_data=True)
            return client.infer(MODEL, [tensor]).as_numpy("output-0")  # type: ignore[no-any-return]

        return call

    return session


def triton_grpc_call(port: int, batch: np.ndarray[Any, Any]) -> Callable[[], Call]:
    import tritonclient.grpc as triton

    def session() -> Call:
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")

        def call() -> np.ndarray[Any, Any]:
            tensor = triton.InferInput("input-0", list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch)  # raw_input_contents
            return client.infer(MODEL, [tensor], client_timeout=600).as_numpy("output-0")  # type: ignore[no-any-return]

        return call

    return session


def drive(session: Callable[[], Call], *, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` threads calling back to back for `seconds` (each at least twice) after one
    untimed call each; requests done, their rate and latency percentiles."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    finished: list[float] = []
    lock = threading.Lock()

    def loop() -> None:
        try:  # a client per thread: tritonclient.http's gevent client stays on its own
            call = session()
            call()
        except BaseException as error:
            errors.append(error)
            start.wait()
            return
        start.wait()
        deadline, done = time.perf_counter() + seconds, 0
        try:
            while time.perf_counter() < deadline or done < 2:
                began = time.perf_counter()
                call()
                ended = time.perf_counter()
                done += 1
                with lock:
                    latencies.append(ended - began)
                    finished.append(ended)
        except BaseException as error:  # reported after the run
            errors.append(error)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}") from errors[0]
    took = max(finished) - began
    return {
        "requests": len(latencies),
        "req_s": len(latencies) / took,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": float(np.percentile(latencies, 99)) * 1000,
    }


def direct(predict: Callable[[np.ndarray[Any, Any]], Any], batch: np.ndarray[Any, Any],
           *, seconds: float) -> dict[str, Any]:  # fmt: skip
    """The model called in this process on `batch`, back to back (after two warm-up calls)."""
    for _ in range(2):
        predict(batch)
    latencies = []
    began = time.perf_counter()
    while (time.perf_counter() - began) < seconds or len(latencies) < 3:
        call_began = time.perf_counter()
        predict(batch)
        latencies.append(time.perf_counter() - call_began)
    took = time.perf_counter() - began
    return {"requests": len(latencies), "req_s": len(latencies) / took,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": float(np.percentile(latencies, 99)) * 1000}  # fmt: skip


def run(
    seconds: float = 10.0, *, clients: int = 1, rows: int = 64, grpc: bool | None = None
) -> dict[str, Any]:
    """Serve the convolution and measure each transport; the rows, the goal and the setting."""
    began = time.perf_counter()
    batch = np.random.default_rng(0).normal(size=(rows, *SHAPE)).astype(np.float32)
    grpc = has_grpc_port() if grpc is None else grpc
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-tensors-") as folder:
        work = Path(folder)
        with Yard(Settings(home=work / "home")) as yard:
            predict = log_model(yard)
        expected = predict(batch)
        baseline = {"transport": "direct", **direct(predict, batch, seconds=seconds)}
        with served(work / "home", work / "serve.log", grpc=grpc) as (url, grpc_port):
            sessions = {
                "json": json_call(url, batch),
                "binary": binary_call(url, batch),
                "binary (tritonclient)": triton_http_call(url, batch),
            }
            if grpc_port is not None:
                sessions["grpc (tritonclient)"] = triton_grpc_call(grpc_port, batch)
            for transport, session in sessions.items():
                answer = session()()
                np.testing.assert_allclose(answer, expected, rtol=1e-4, atol=1e-5)
                results.append(
                    {"transport": transport, **drive(session, clients=clients, seconds=seconds)}
                )
    json_rate = results[0]["req_s"]
    for row in [*results, baseline]:
        row["rows_s"] = row["req_s"] * rows
        row["over_json"] = row["req_s"] / json_rate
        row["over_direct"] = row["req_s"] / baseline["req_s"]
    binary = next(row for row in results if row["transport"] == "binary")
    import torch

    return {
        "rows": [*results, baseline],
        "goal": {"binary_over_json": binary["over_json"], "goal": GOAL,
                 "met": binary["over_json"] >= GOAL},  # fmt: skip
        "environment": {
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "clients": clients, "rows_per_request": rows,
            "shape": [rows, *SHAPE], "request_mb": round(batch.nbytes / 1e6, 1),
            "seconds": seconds, "grpc": grpc,
            "versions": {"modelyard": modelyard.__version__, "numpy": np.__version__,
                         "torch": torch.__version__},
            "total_seconds": round(time.perf_counter() - began, 1),
        },
    }  # fmt: skip


def print_table(result: dict[str, Any]) -> None:
    environment = result["environment"]
    print(f"{environment['rows_per_request']} x {' x '.join(map(str, SHAPE))} FP32 in and out "
          f"({environment['request_mb']} MB each way), {environment['clients']} client(s), "
          f"{environment['seconds']:g} s per transport")  # fmt: skip
    print(f"{'transport':<22} {'requests':>8} {'req/s':>7} {'rows/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'x json':>7} {'x direct':>8}")  # fmt: skip
    for row in result["rows"]:
        print(f"{row['transport']:<22} {row['requests']:>8} {row['req_s']:>7.2f} "
              f"{row['rows_s']:>8.1f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
              f"{row['over_json']:>7.2f} {row['over_direct']:>8.2f}")  # fmt: skip
    goal = result["goal"]
    print(f"\ngoal: binary HTTP >= {goal['goal']:g}x JSON's rows/s: "
          f"{goal['binary_over_json']:.1f}x, {'met' if goal['met'] else 'NOT met'}")  # fmt: skip
    if not environment["grpc"]:
        print("(no gRPC row: `modelyard serve` has no --grpc-port here, or grpc is missing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="run length per transport")
    parser.add_argument("--clients", type=int, default=1, help="concurrent connections")
    parser.add_argument("--rows", type=int, default=64, help="images per request")
    parser.add_argument("--no-grpc", action="store_true", help="skip the gRPC row")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serving_tensors.json")
    args = parser.parse_args()
    result = run(args.seconds, clients=args.clients, rows=args.rows,
                 grpc=False if args.no_grpc else None)  # fmt: skip
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
