"""Cold start and explanations through the server (issue 18, items 7 and 8).

    python bench/serving_startup.py [--seconds 10] [--repeat 3] [--torch-mib 100]
                                    [--out bench/results/serving_startup.json] [--dir DIR]

A few minutes. In a fresh temporary home (under `--dir`) it registers three models, each in a
subprocess so that this process stays light: a scikit-learn `LogisticRegression` on 4 features,
a torch MLP of a few large `Linear` layers (`--torch-mib` of float32 weights, its class in a
small module on `PYTHONPATH`, served with `--trust-module`) and an XGBoost classifier on 20
features with a reference sample (for tree SHAP). Then:

- **cold start**: `modelyard serve NAME` from `Popen` to the first 200 answer of
  `POST /v2/models/NAME/infer` (polled every 10 ms), against a plain process that loads the same
  file the plain way and answers one row: `skops.io.load` for scikit-learn (the same safe loader),
  and for torch `import torch`, the class built on the meta device, `load_state_dict` of
  `safetensors.torch.load_file` with `assign=True`, one forward pass (the fastest plain load).
  The plain process is timed from `Popen` to the line it prints after its answer. After one
  untimed start of each (which restores the version's folder into the cache: its time is kept
  as `first_s`), ours and the plain one alternate `--repeat` times; medians. Goal for torch:
  ratio <= 2.
- **explain, 1 row**: `POST /v2/models/xgb/explain` with one row over one keep-alive
  connection, against `shap.TreeExplainer(model)(x[:1])` in this process on the same loaded
  model, alternating; medians. The client is a prepared request on a plain socket (as `wrk`
  sends), so the figure is the server's; `http_client_ms` is the same through `http.client`.
  Then the CPU time per call (client plus server, from psutil), which a busy machine inflates
  least. Each part runs for half of `--seconds`; both processes with `OMP_NUM_THREADS=1`.
  Goal: ratio <= 1.3.

`run(seconds, ...)` returns the JSON document; `main()` prints the table and writes it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPLAIN_FEATURES = 20
TORCH_IN, TORCH_OUT = 512, 10
GOAL_TORCH, GOAL_EXPLAIN = 2.0, 1.3

MLP_MODULE = '''
"""The torch model of bench/serving_startup.py: a stack of wide Linear layers."""

import torch


class MLP(torch.nn.Module):
    def __init__(self, inputs: int = 512, width: int = 2048, depth: int = 6, outputs: int = 10):
        super().__init__()
        sizes = [inputs, *[width] * depth]
        self.hidden = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])
        )
        self.out = torch.nn.Linear(width, outputs)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)
'''

REGISTER = """
import json, sys
import numpy as np
from modelyard import Settings, Yard

home = sys.argv[1]
width, depth, inputs, outputs, features = (int(value) for value in sys.argv[2:])
rng = np.random.default_rng(0)
with Yard(Settings(home=home)) as yard:
    from sklearn.linear_model import LogisticRegression
    x = rng.normal(size=(200, 4))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    yard.log_model(model, name="iris", input_example=x[:5])

    import torch
    from mlp_model import MLP
    torch.manual_seed(0)
    init = {"inputs": inputs, "width": width, "depth": depth, "outputs": outputs}
    mlp = MLP(**init).eval()
    example = rng.normal(size=(2, inputs)).astype(np.float32)
    version = yard.log_model(mlp, name="mlp", input_example=example, options={"init": init})
    files = {"mlp_init": init,
             "mlp_weights": str(yard.model_folder(version) / "model.safetensors"),
             "iris_file": str(yard.model_folder(yard.get_version("iris")) / "model.skops")}

    import xgboost
    from sklearn.datasets import make_classification
    x, y = make_classification(n_samples=5_000, n_features=features, n_informative=12,
                               random_state=0)
    booster = xgboost.XGBClassifier(n_estimators=100, max_depth=6, random_state=0).fit(x, y)
    yard.log_model(booster, name="xgb", input_example=x[:2], reference_data=x[:2_000])
print(json.dumps(files))
"""

PLAIN_SKLEARN = """
import sys
import numpy as np
import skops.io
file = sys.argv[1]
model = skops.io.load(file, trusted=skops.io.get_untrusted_types(file=file))
model.predict(np.full((1, 4), 0.1))
print("answered", flush=True)
"""

PLAIN_TORCH = """
import json, sys
import torch
from safetensors.torch import load_file
from mlp_model import MLP
init = json.loads(sys.argv[2])
with torch.device("meta"):
    model = MLP(**init)
model.load_state_dict(load_file(sys.argv[1]), assign=True)
model.eval()
with torch.inference_mode():
    model(torch.full((1, init["inputs"]), 0.1))
print("answered", flush=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(work: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    python_path = os.pathsep.join(filter(None, [str(work / "models"), keep.get("PYTHONPATH")]))
    return {**keep, "MODELYARD_HOME": str(work / "home"), "PYTHONPATH": python_path,
            "OMP_NUM_THREADS": keep.get("OMP_NUM_THREADS", "1")}  # fmt: skip


def register(work: Path, *, torch_mib: int) -> dict[str, Any]:
    """Register the three models; return the plain baselines' files."""
    (work / "models").mkdir(parents=True)
    (work / "models" / "mlp_model.py").write_text(MLP_MODULE)
    width = 2048
    # float32 weights: inputs*width + (depth-1)*width^2 (+ biases, the output layer).
    depth = max(1, round((torch_mib * 2**20 / 4 - TORCH_IN * width) / width**2) + 1)
    done = subprocess.run(
        [sys.executable, "-c", REGISTER, str(work / "home"),
         *(str(n) for n in (width, depth, TORCH_IN, TORCH_OUT, EXPLAIN_FEATURES))],
        env=environment(work), cwd=work, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"registering the models failed:\n{done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["mlp_mib"] = Path(found["mlp_weights"]).stat().st_size / 2**20
    return found


def body(name: str) -> bytes:
    if name == "iris":
        shape, data = [1, 4], [0.1] * 4
    elif name == "mlp":
        shape, data = [1, TORCH_IN], [0.1] * TORCH_IN
    else:
        shape, data = [1, EXPLAIN_FEATURES], [0.1] * EXPLAIN_FEATURES
    datatype = "FP32" if name == "mlp" else "FP64"
    tensor = {"name": "input-0", "shape": shape, "datatype": datatype, "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def _answers(url: str, payload: bytes) -> bool:
    headers = {"content-type": "application/json"}
    request = urllib.request.Request(url, data=payload, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def serve_argv(name: str, port: int) -> list[str]:
    trust = ["--trust-module", "mlp_model"] if name == "mlp" else []
    return [str(Path(sys.executable).parent / "modelyard"), "serve", name, "--port", str(port),
            *trust]  # fmt: skip


def first_answer(work: Path, name: str) -> float:
    """Seconds from `Popen(modelyard serve NAME)` to its first 200 answer."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
    payload = body(name)
    with (work / f"serve-{name}.log").open("wb") as log:
        began = time.perf_counter()
        process = subprocess.Popen(serve_argv(name, port), env=environment(work), cwd=work,
                                   stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        try:
            while not _answers(url, payload):
                if process.poll() is not None or time.perf_counter() - began > 300:
                    raise RuntimeError(f"serve {name} did not answer; see {log.name}")
                time.sleep(0.01)
            return time.perf_counter() - began
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def plain_answer(work: Path, script: str, *args: str) -> float:
    """Seconds from `Popen(python -c SCRIPT ARGS)` to the line it prints after its answer."""
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", script, *args], env=environment(work),
                               cwd=work, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    elapsed = time.perf_counter() - began
    process.wait(timeout=60)
    if "answered" not in line:
        raise RuntimeError(f"the plain baseline failed (exit {process.returncode})")
    return elapsed


def cold_start(
    work: Path, name: str, plain: Callable[[], float], repeat: int, label: str
) -> dict[str, Any]:
    first = first_answer(work, name)
    plain()  # untimed, like the first start: the page cache holds both now
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(first_answer(work, name))
        theirs.append(plain())
    served, baseline = statistics.median(ours), statistics.median(theirs)
    return {"case": f"cold start: {label}", "modelyard_s": served, "baseline_s": baseline,
            "ratio": served / baseline, "first_s": first, "runs_s": ours,
            "baseline_runs_s": theirs}  # fmt: skip


@contextmanager
def served(work: Path, name: str) -> Iterator[tuple[http.client.HTTPConnection, int]]:
    """`modelyard serve NAME` on a free port; a keep-alive connection to it once ready, and
    the server's process id."""
    port = free_port()
    with (work / f"serve-{name}.log").open("wb") as log:
        process = subprocess.Popen(serve_argv(name, port), env=environment(work), cwd=work,
                                   stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        try:
            began = time.perf_counter()
            while not _answers(f"http://127.0.0.1:{port}/v2/models/{name}/infer", body(name)):
                if process.poll() is not None or time.perf_counter() - began > 300:
                    raise RuntimeError(f"serve {name} did not start; see {log.name}")
                time.sleep(0.05)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                yield connection, process.pid
            finally:
                connection.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def explain_row(work: Path, seconds: float) -> dict[str, Any]:
    """One row through `/explain` against the same shap explainer called in this process."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the server; read when xgboost loads
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import psutil

    from modelyard import Settings, Yard
    from modelyard.explain._shap import shap_module

    with Yard(Settings(home=work / "home")) as yard:
        native = yard.load_model("xgb").native
    explainer = shap_module().TreeExplainer(native)
    payload = body("xgb")
    row = np.full((1, EXPLAIN_FEATURES), 0.1)
    headers = {"content-type": "application/json"}
    with served(work, "xgb") as (connection, pid):
        raw = RawClient(connection.port, "/v2/models/xgb/explain", payload)

        def with_http_client() -> None:
            connection.request("POST", "/v2/models/xgb/explain", body=payload, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"explain answered {response.status}: {answer[:300]!r}")

        def in_process() -> None:
            explainer(row)

        for _ in range(20):  # builds the explainer (and imports shap) in the server
            raw()
            with_http_client()
            in_process()
        # All three in turn: a connection left idle for long is closed by the server.
        ours, client, theirs = paired(seconds / 2, raw, with_http_client, in_process)
        cpu_ours, cpu_theirs = cpu_per_call(seconds / 2, psutil.Process(pid), raw, in_process)
        raw.close()
    served_ms, shap_ms = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    return {"case": "explain 1 row: server vs shap in-process", "modelyard_ms": served_ms,
            "shap_ms": shap_ms, "ratio": served_ms / shap_ms, "calls": len(ours),
            "modelyard_p90_ms": _percentile(ours, 0.9) * 1e3,
            "shap_p90_ms": _percentile(theirs, 0.9) * 1e3,
            "http_client_ms": statistics.median(client) * 1e3,
            "modelyard_cpu_ms": cpu_ours * 1e3, "shap_cpu_ms": cpu_theirs * 1e3,
            "cpu_ratio": cpu_ours / cpu_theirs}  # fmt: skip


class RawClient:
    """One prepared keep-alive request on a plain socket, read back by its Content-Length: a
    request's cost to the server with as little client work as possible (as `wrk` sends)."""

    def __init__(self, port: int, path: str, payload: bytes) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port))
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n")  # fmt: skip
        self.request = head.encode() + payload

    def __call__(self) -> bytes:
        self.socket.sendall(self.request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._receive()
        head, _, rest = data.partition(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise RuntimeError(f"explain answered {head[:300]!r}")
        found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if found is None:  # chunked (uvicorn, which served before issue 18): up to the last
            while not rest.endswith(b"\r\n0\r\n\r\n"):
                rest += self._receive()
            return rest
        length = int(found.group(1))
        while len(rest) < length:
            rest += self._receive()
        return rest[:length]

    def _receive(self) -> bytes:
        chunk = self.socket.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.socket.close()


def cpu_per_call(
    seconds: float, server: Any, ours: Callable[[], object], theirs: Callable[[], object]
) -> tuple[float, float]:
    """CPU seconds per call: ours counts this process (the client) and the server's, theirs
    this process only. Blocks of 50 calls alternate for `seconds`. CPU time is what a busy
    machine inflates least: waiting for a core is not counted."""
    mine = other = 0.0
    calls = 0
    deadline = time.perf_counter() + seconds
    while calls < 200 or time.perf_counter() < deadline:
        began, cpu = time.process_time(), server.cpu_times()
        for _ in range(50):
            ours()
        after = server.cpu_times()
        mine += time.process_time() - began + (after.user + after.system) - (cpu.user + cpu.system)
        began = time.process_time()
        for _ in range(50):
            theirs()
        other += time.process_time() - began
        calls += 50
    return mine / calls, other / calls


def paired(seconds: float, *actions: Callable[[], object]) -> list[list[float]]:
    """Seconds of each call, the actions in turn, for `seconds` (at least 50 rounds)."""
    times: list[list[float]] = [[] for _ in actions]
    deadline = time.perf_counter() + seconds
    while len(times[0]) < 50 or time.perf_counter() < deadline:
        for action, taken in zip(actions, times, strict=True):
            began = time.perf_counter()
            action()
            taken.append(time.perf_counter() - began)
    return times


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(
    seconds: float = 10.0,
    *,
    repeat: int = 3,
    torch_mib: int = 100,
    directory: Path | None = None,
    explain: bool = True,
) -> dict[str, Any]:
    """Every figure of this benchmark as a JSON document (`environment`, `rows`)."""
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="modelyard-serving-startup-", dir=directory))
    try:
        files = register(work, torch_mib=torch_mib)
        sklearn = cold_start(
            work, "iris", lambda: plain_answer(work, PLAIN_SKLEARN, files["iris_file"]), repeat,
            "sklearn LogisticRegression vs skops.io.load",
        )  # fmt: skip
        init = json.dumps(files["mlp_init"])
        mlp = cold_start(
            work, "mlp", lambda: plain_answer(work, PLAIN_TORCH, files["mlp_weights"], init),
            repeat, f"torch MLP {files['mlp_mib']:.0f} MiB vs plain torch",
        )  # fmt: skip
        rows = [sklearn, mlp]
        if explain:
            rows.append(explain_row(work, seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "environment": {
            "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "repeat": repeat, "seconds": seconds,
            "torch_mib": torch_mib, "total_s": round(time.perf_counter() - began, 1),
        },
        "goals": {"cold start torch ratio": GOAL_TORCH, "explain ratio": GOAL_EXPLAIN},
        "rows": rows,
    }  # fmt: skip


def print_table(document: dict[str, Any]) -> None:
    print(f"{'case':<58} {'modelyard':>10} {'baseline':>10} {'ratio':>6}")
    for row in document["rows"]:
        if "modelyard_s" in row:
            print(f"{row['case']:<58} {row['modelyard_s']:>9.2f}s {row['baseline_s']:>9.2f}s "
                  f"{row['ratio']:>6.2f}   (first start {row['first_s']:.2f}s)")  # fmt: skip
        else:
            print(
                f"{row['case']:<58} {row['modelyard_ms']:>8.3f}ms {row['shap_ms']:>8.3f}ms "
                f"{row['ratio']:>6.2f}   ({row['calls']} calls each)"
            )
            print(f"{'  with http.client as the client':<58} {row['http_client_ms']:>8.3f}ms")
            print(f"{'  in CPU time (client + server)':<58} "
                  f"{row['modelyard_cpu_ms']:>8.3f}ms {row['shap_cpu_ms']:>8.3f}ms "
                  f"{row['cpu_ratio']:>6.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="Explain timing, each side.")
    parser.add_argument("--repeat", type=int, default=3, help="Timed starts of each process.")
    parser.add_argument("--torch-mib", type=int, default=100)
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="Where the temporary home goes.")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "serving_startup.json"
    )
    args = parser.parse_args()
    document = run(args.seconds, repeat=args.repeat, torch_mib=args.torch_mib,
                   directory=args.dir, explain=not args.no_explain)  # fmt: skip
    print_table(document)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
