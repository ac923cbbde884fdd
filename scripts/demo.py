"""The modelyard demo, on the embedded default (SQLite and a local folder; no server).

A scikit-learn model is logged from Python with its signature and loaded back in a fresh process;
then the real `modelyard` command line runs, as a user would: ten fine-tuned variants of a model
are logged as versions (and cost little more than one model, thanks to per-tensor dedup), two
versions are compared down to their tensors, two are merged, one is promoted through a metric
gate into production, and the production version is downloaded back byte for byte. Run it
through `scripts/demo`, which sets things up first.

Every command printed after `$ ` is quoted for bash (`shlex.join`) and runs through bash as
printed, so a reader can paste it; tests/test_demo.py pastes them all again.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

VARIANTS = 10
CHANGED_SHARE = 0.05


def modelyard(*args: str) -> str:
    """Run the real `modelyard` command line and return what it printed."""
    command = [sys.executable, "-m", "modelyard", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"modelyard {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def paste(line: str) -> subprocess.CompletedProcess[str]:
    """Run a printed command line as a user pasting it would: through bash (`main` puts this
    environment's `modelyard` and `python` first on PATH)."""
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True)


def show(*args: str, refused: str = "") -> None:
    """Print `$ modelyard ARGS`, quoted for bash, and what pasting it prints. With `refused`
    (why, shown as a comment), the command is meant to fail and its error is shown."""
    line = shlex.join(["modelyard", *args])
    print(f"$ {line}" + (f"   # {refused}" if refused else ""))
    result = paste(line)
    if (result.returncode != 0) != bool(refused):
        raise SystemExit(f"{line} exited with {result.returncode}: {result.stderr.strip()}")
    print((result.stderr if refused else result.stdout).rstrip() + "\n")


def make_base(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A ~42 MB MLP-like model: 40 layers of weights and biases."""
    tensors: dict[str, np.ndarray] = {}
    for layer in range(40):
        tensors[f"layer{layer:02d}.weight"] = rng.standard_normal((512, 512), dtype=np.float32)
        tensors[f"layer{layer:02d}.bias"] = rng.standard_normal(512, dtype=np.float32)
    return tensors


def fine_tune(base: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A variant that changes 5% of the tensors, as a short fine-tune of a few layers would."""
    names = sorted(base)
    changed = rng.choice(names, size=max(1, round(CHANGED_SHARE * len(names))), replace=False)
    tuned = dict(base)
    for name in map(str, changed):
        tuned[name] = base[name] + rng.normal(0, 1e-3, base[name].shape).astype(np.float32)
    return tuned


def stored_bytes() -> int:
    return int(json.loads(modelyard("store", "stats", "--json"))["bytes"])


def log_variants(work: Path) -> int:
    rng = np.random.default_rng(0)
    base = make_base(rng)
    print(f"{'version':>8}  {'model size':>12}  {'new bytes stored':>16}  {'auc':>5}")
    model_size = 0
    for variant in range(VARIANTS):
        folder = work / f"variant-{variant}"
        folder.mkdir()
        save_file(base if variant == 0 else fine_tune(base, rng), folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"layers": 40, "variant": variant}))
        auc = round(0.86 + 0.01 * variant, 2)
        before = stored_bytes()
        version = json.loads(
            modelyard("log", str(folder), "--name", "mlp", "--metric", f"auc={auc}",
                      "--param", f"lr={1e-3 / (variant + 1):.1e}", "--tag", "team=risk", "--json")
        )  # fmt: skip
        model_size = sum(f.stat().st_size for f in folder.iterdir())
        added = stored_bytes() - before
        print(f"{'mlp:' + str(version['number']):>8}  {model_size:>12,}  {added:>16,}  {auc:>5}")
    total = stored_bytes()
    print(f"\n{VARIANTS} versions stored in {total:,} bytes = {total / model_size:.2f}x one model "
          f"(a plain copy of each: {VARIANTS:.2f}x)\n")  # fmt: skip
    return model_size


FRESH_PROCESS = (  # double quotes only: shlex.join then quotes it plainly, '…'
    "from modelyard import Yard; from sklearn.datasets import load_breast_cancer; "
    'X = load_breast_cancer(as_frame=True).data; model = Yard().load_model("cancer@champion"); '
    'print(f"loaded {model!r}; predictions for 5 rows: {model.predict(X[:5]).tolist()}")'
)


def explain_one(work: Path) -> None:
    """Why the champion predicts what it does for one row: its five largest contributions."""
    from sklearn.datasets import load_breast_cancer

    X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    X.iloc[[0]].to_parquet(work / "row.parquet")
    show("explain", "cancer@champion", "--input", str(work / "row.parquet"), "--top", "5",
         "--plot", str(work / "why.png"))  # fmt: skip


def log_framework_model() -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from modelyard import Yard

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    train_x, test_x, train_y, test_y = train_test_split(X, y, random_state=0)
    yard = Yard()
    for depth in (2, 4):
        model = HistGradientBoostingClassifier(max_depth=depth, random_state=0)
        model.fit(train_x, train_y)
        auc = roc_auc_score(test_y, model.predict_proba(test_x)[:, 1])
        version = yard.log_model(model, name="cancer", input_example=train_x[:5],
                                 reference_data=train_x, metrics={"auc": round(auc, 4)},
                                 alias="champion")  # fmt: skip
        print(f">>> yard.log_model(HistGradientBoostingClassifier(max_depth={depth}), ...)")
        print(f"{version.ref}: flavor {version.flavor}, auc {auc:.4f}, "
              f"{len(version.signature['inputs'])} typed inputs")  # type: ignore[index]  # fmt: skip
    yard.close()
    line = shlex.join(["python", "-c", FRESH_PROCESS])
    print(f"\n$ {line}   # a new process")
    fresh = paste(line)
    if fresh.returncode != 0:
        raise SystemExit(f"loading in a fresh process failed: {fresh.stderr.strip()}")
    print(fresh.stdout.strip() + "\n")
    show("versions", "diff", "cancer:1", "cancer:2")


RULES = """
- name: cancer-input-drift
  model: cancer@production
  signal: drift_share
  op: ">="
  threshold: 0.3
  window: 10m
  actions: [{type: webhook, url: "%s"}, {type: rollback}, {type: log}]
"""


def serve_production(work: Path) -> None:
    import httpx
    from sklearn.datasets import load_breast_cancer

    for version in ("cancer:1", "cancer:2"):
        for state in ("validated", "staging"):
            modelyard("promote", version, state)
        modelyard("promote", version, "production", "--comment", "ready to serve")
    show("alias", "history", "cancer@production")
    received: list[dict[str, Any]] = []
    hook = _webhook_receiver(received)
    rules = work / "rules.yaml"
    rules.write_text(RULES % hook)
    print(f"$ {shlex.join(['cat', str(rules)])}{RULES % hook}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {
        "MODELYARD_SERVE_POLL_SECONDS": "0.5",  # follow alias moves fast, for the demo
        "MODELYARD_SERVE_ALERT_SECONDS": "1",
        "MODELYARD_ALERT_WEBHOOKS": json.dumps([hook]),  # the one URL alerts may post to
    }
    args = ["modelyard", "serve", "cancer@production", "--port", str(port), "--log-sample", "1",
            "--alerts", str(rules)]  # fmt: skip
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in settings.items())
    print(f"$ {assignments} {shlex.join(args)} &")
    log = (work / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **settings},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _ready(httpx, url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {(work / 'serve.log').read_text()}")
            time.sleep(0.2)
        X, y = load_breast_cancer(return_X_y=True, as_frame=True)
        rows, labels = X.iloc[::71][:8], y.iloc[::71][:8]
        answer = _infer(httpx, url, rows)
        print(f"POST {url}/v2/models/cancer/infer  (8 rows, {len(rows.columns)} named inputs)")
        print(f"answered by version {answer['model_version']}: {answer['outputs'][0]['data']}")
        print(f"true labels:          {labels.tolist()}\n")
        drifted = X.copy()
        drifted[drifted.columns[:10]] *= 1.6  # the first ten measurements read 60% high
        for start in range(0, len(drifted), 100):
            _infer(httpx, url, drifted.iloc[start : start + 100])
        print(f"sent {len(drifted)} rows whose first ten features read 60% high")
        while not received and time.monotonic() < deadline + 60:
            time.sleep(0.2)
        print(f"the webhook received: {json.dumps(received[0]) if received else 'nothing'}")
        while answer["model_version"] != "1" and time.monotonic() < deadline + 90:
            time.sleep(0.2)
            answer = _infer(httpx, url, rows)
        print(
            f"the alert rolled production back: now answered by version {answer['model_version']}\n"
        )
        show("monitor", "report", "cancer:2", "--window", "10m")
        show("alias", "history", "cancer@production")
        metrics = httpx.get(f"{url}/metrics").text.splitlines()
        wanted = ("modelyard_requests_total", "modelyard_alert_state", "modelyard_drift_share")
        print("\n".join(line for line in metrics if line.startswith(wanted)))
        print()
    finally:
        server.terminate()
        print(f"SIGTERM: the server drained and exited with {server.wait(timeout=30)}\n")
        log.close()


def _infer(httpx: Any, url: str, rows: Any) -> Any:
    inputs = [
        {"name": str(c), "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
        for c in rows.columns
    ]
    return httpx.post(f"{url}/v2/models/cancer/infer", json={"inputs": inputs}).json()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _webhook_receiver(received: list[dict[str, Any]]) -> str:
    """A local HTTP server that keeps the JSON bodies posted to it; returns its URL."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/alerts"


def _ready(httpx: Any, url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200)
    except httpx.TransportError:
        return False


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="modelyard-demo-"))
    os.environ.setdefault("MODELYARD_HOME", str(work / "home"))
    os.environ.setdefault("MODELYARD_USER", "ana")
    # The printed commands run through bash: this environment's `modelyard` and `python` first.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    print(f"modelyard home: {os.environ['MODELYARD_HOME']}\n")

    print("== 1. A scikit-learn model, logged with its signature, loaded back anywhere")
    log_framework_model()
    explain_one(work)

    print("== 2. Ten fine-tuned variants, logged as versions of one model")
    log_variants(work)
    show("versions", "diff", "mlp:1", "mlp:2")
    show("versions", "merge", "mlp:9", "mlp:10", "--weights", "0.5,0.5", "--alias", "soup")
    show("lineage", "mlp@soup")
    show("versions", "search", "metrics.auc >= 0.93 and tags.team = 'risk'",
         "--order-by", "metrics.auc desc")  # fmt: skip

    print("== 3. Promotion through a gate")
    show("gate", "add", "mlp", "metric", "metric=auc", "op=>=", "value=0.9")
    for state in ("validated", "staging"):
        modelyard("promote", "mlp:2", state)
        modelyard("promote", "mlp:10", state)
    show("promote", "mlp:2", "production", refused="auc 0.87: the gate refuses")
    show("promote", "mlp:10", "production", "--comment", "best auc on the holdout")
    show("models", "show", "mlp")
    show("alias", "history", "mlp@production")

    print("== 4. The production version comes back byte for byte")
    restored = work / "production"
    show("versions", "download", "mlp@production", str(restored))
    same = subprocess.run(["diff", "-r", str(work / "variant-9"), str(restored)]).returncode == 0
    print(f"identical to what was logged: {same}\n")
    shutil.rmtree(restored)  # compared: the download command above can be pasted again
    print("== 5. Served, watched, and rolled back when its inputs drift")
    serve_production(work)
    show("audit", "verify")
    show("store", "verify")
    # Not a `$ ` line: it serves until Ctrl-C, so tests/test_demo.py must not paste it.
    home = shlex.quote(os.environ["MODELYARD_HOME"])
    print("Next: see it all in the web UI (Ctrl-C stops it):")
    print(f"  MODELYARD_HOME={home} modelyard ui")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
