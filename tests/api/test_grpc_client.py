"""`modelyard serve --grpc-port` as a real process, asked by a real Open Inference Protocol
client, `tritonclient.grpc`: health, metadata, inference (raw, as the client sends it, and
typed), each error as its status, bearer tokens, metrics and the prediction log; and in every
worker with `--workers`.

tritonclient registers its own copy of the protocol's messages (`inference.*`) in protobuf's
default pool, which refuses a second one, so the client runs in a process of its own: this
test process has modelyard's stubs loaded (test_grpc.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from modelyard.registry import Principals
from tests.servers import free_port, serving_process

X = np.zeros((1, 3), np.float32)

CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    url, tokens = sys.argv[1], json.loads(sys.argv[2])
    client = triton.InferenceServerClient(url)
    auth = {"authorization": f"Bearer {tokens['rita']}"} if tokens else {}
    out = {}

    def attempt(name, call):
        try:
            out[name] = call()
        except InferenceServerException as error:
            out[name] = {"status": error.status(), "message": error.message()}

    def tensor(name="input-0", rows=2, datatype="FP32"):
        given = triton.InferInput(name, [rows, 3], datatype)
        given.set_data_from_numpy(np.ones((rows, 3), np.float32))
        return given

    out["live"] = client.is_server_live()
    out["ready"] = client.is_server_ready()
    out["model_ready"] = client.is_model_ready("fraud", headers=auth)
    out["server"] = client.get_server_metadata(headers=auth, as_json=True)
    out["metadata"] = client.get_model_metadata("fraud", headers=auth, as_json=True)
    for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
        result = client.infer("fraud", [tensor()], headers=auth, request_id="r1")
    out["raw"] = {"values": result.as_numpy("output-0").tolist(),
                  "response": result.get_response(as_json=True)}
    typed = triton.InferInput("input-0", [1, 3], "FP32")
    typed._get_tensor().contents.fp32_contents.extend([1.0, 1.0, 1.0])  # what other clients send
    out["typed"] = client.infer("fraud", [typed], headers=auth).get_response(as_json=True)
    attempt("not_found", lambda: client.infer("nope", [tensor()], headers=auth))
    attempt("no_version", lambda: client.infer("fraud", [tensor()], model_version="9",
                                               headers=auth))
    attempt("invalid", lambda: client.infer("fraud", [tensor("other")], headers=auth))
    if tokens:
        attempt("anonymous", lambda: client.infer("fraud", [tensor()]))
        nobody = {"authorization": f"Bearer {tokens['nobody']}"}
        attempt("denied", lambda: client.get_model_metadata("fraud", headers=nobody))
    client.close()
    print(json.dumps(out))
    """
)


def ask(port: int, tokens: dict[str, str] | None = None, *, infers: int = 1) -> dict[str, Any]:
    """What tritonclient got from the gRPC server on `port`, call by call."""
    command = [sys.executable, "-c", CLIENT, f"127.0.0.1:{port}", json.dumps(tokens or {}),
               str(infers)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def _model() -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=2.0).fit(np.zeros((2, 3)), [0, 0])


def test_a_real_client_over_grpc_with_tokens(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Yard(Settings(home=home, user="ana")) as yard:
        yard.log_model(_model(), name="fraud", input_example=X, alias="production")
        principals = Principals(yard.local_registry().database, actor="root")
        principals.grant("rita", "reader", models="fraud")
        tokens = {user: principals.create_token(user=user).secret for user in ("rita", "nobody")}
    grpc_port, exits = free_port(), []
    env = {"MODELYARD_AUTH": "true", "MODELYARD_SERVE_LOG_SAMPLE": "1"}
    with serving_process(home, "fraud@production", "--grpc-port", str(grpc_port), env=env,
                         exit_codes=exits) as url:  # fmt: skip
        got = ask(grpc_port, tokens)
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert exits == [0]
    assert got["live"] and got["ready"] and got["model_ready"]
    assert got["server"]["name"] == "modelyard"
    assert got["metadata"]["name"] == "fraud" and got["metadata"]["versions"] == ["1"]
    assert got["metadata"]["inputs"][0]["name"] == "input-0"
    assert got["raw"]["values"] == [2.0, 2.0]
    assert got["raw"]["response"]["id"] == "r1" and got["raw"]["response"]["model_version"] == "1"
    (typed,) = got["typed"]["outputs"]
    assert list(typed["contents"].values()) == [[2.0]] and "raw_output_contents" not in got["typed"]
    statuses = {name: got[name]["status"] for name in ("not_found", "no_version", "invalid",
                                                       "anonymous", "denied")}  # fmt: skip
    assert statuses == {
        "not_found": "StatusCode.PERMISSION_DENIED",  # rita may read fraud only, as over HTTP
        "no_version": "StatusCode.NOT_FOUND",
        "invalid": "StatusCode.INVALID_ARGUMENT",
        "anonymous": "StatusCode.UNAUTHENTICATED",
        "denied": "StatusCode.PERMISSION_DENIED",
    }
    assert 'code="200",model="fraud",version="1"} 2.0' in metrics  # the raw and the typed call
    (day,) = (home / "predictions" / "fraud" / "1").iterdir()
    assert [json.loads(line)["id"] for line in day.read_text().splitlines()][0] == "r1"
    log = (tmp_path / "serve.log").read_text()
    assert f"gRPC (inference.GRPCInferenceService) at 127.0.0.1:{grpc_port}" in log


def test_every_worker_serves_grpc_on_the_shared_port(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(_model(), name="fraud", input_example=X, alias="production")
    grpc_port = free_port()
    args = ("fraud@production", "--grpc-port", str(grpc_port), "--workers", "2")
    with serving_process(home, *args) as url:
        for _ in range(3):  # each client connects anew: the kernel picks a worker
            got = ask(grpc_port, infers=2)
            assert got["raw"]["values"] == [2.0, 2.0]
            assert got["not_found"]["status"] == "StatusCode.NOT_FOUND"
            assert "not served here" in got["not_found"]["message"]
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert 'code="200",model="fraud",version="1"} 9.0' in metrics  # added up over the workers


def test_a_grpc_port_in_use_fails_at_once(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "modelyard", "serve", "fraud", "--port", str(free_port()),
             "--grpc-port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
            env={"MODELYARD_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "--grpc-port" in done.stderr and "Traceback" not in done.stderr
