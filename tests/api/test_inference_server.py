"""`serve(..., workers=N)` launches its worker processes and, once they have stopped, leaves this
process's environment exactly as it found it (secrets included)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from modelyard.api import create_inference_app
from modelyard.api._inference_server import served_lines
from modelyard.api._workers import announce_once, read_worker_spec, worker_environment
from tests.servers import free_port

SERVE = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import httpx
    from modelyard import Settings
    from modelyard.api import serve

    home, port = sys.argv[1], int(sys.argv[2])
    os.environ["MODELYARD_S3_SECRET_ACCESS_KEY"] = "kept"
    os.environ["MODELYARD_SERVE_MAX_QUEUE"] = "9"
    before = dict(os.environ)
    answers = []

    def stop_when_answered():
        for _ in range(600):
            try:
                answers.append(httpx.get(f"http://127.0.0.1:{port}/v2/models/fraud").status_code)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)  # the workers stop, and `serve` returns

    threading.Thread(target=stop_when_answered, daemon=True).start()
    serve(Settings(home=home), ["fraud"], port=port, workers=2)
    changed = sorted(set(os.environ.items()) ^ set(before.items()))
    print(answers, changed)
    """
)


def test_launching_workers_leaves_the_environment_as_it_was(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = DummyRegressor(strategy="constant", constant=2.0).fit(np.zeros((2, 3)), [0, 0])
    with Yard(Settings(home=home)) as yard:
        yard.log_model(model, name="fraud", input_example=np.zeros((1, 3), np.float32))
    command = [sys.executable, "-c", SERVE, str(home), str(free_port())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[200] []"


def test_the_lines_say_what_each_reference_resolved_to(tmp_path: Path) -> None:
    model = DummyRegressor(strategy="constant", constant=2.0).fit(np.zeros((2, 3)), [0, 0])
    with Yard(Settings(home=tmp_path / "home")) as yard:
        for alias in ("production", None, None, None):
            yard.log_model(model, name="fraud", input_example=np.zeros((1, 3), np.float32),
                           alias=alias)  # fmt: skip
        refs = ["fraud@production", "fraud:2"]
        app = create_inference_app(yard.settings, refs, yard=yard, canaries={"fraud:3": 0.1},
                                   shadows=["fraud:4"])  # fmt: skip

        async def lines() -> list[str]:
            assert app.on_startup is not None and app.on_shutdown is not None
            await app.on_startup()
            try:
                return served_lines(app, refs, "http://127.0.0.1:9")
            finally:
                await app.on_shutdown()

        assert asyncio.run(lines()) == [
            "serving fraud@production (fraud:1) at http://127.0.0.1:9/v2/models/fraud",
            "serving fraud:2 at http://127.0.0.1:9/v2/models/fraud",
            "canary fraud:3 answers 10% of fraud's requests",
            "shadow fraud:4 sees copies of fraud's requests",
        ]


def test_only_the_first_ready_worker_announces(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with worker_environment(settings, ["fraud"], {}, url="http://127.0.0.1:9", started=4.0):
        spec = read_worker_spec()
        assert (spec.url, spec.started, spec.refs) == ("http://127.0.0.1:9", 4.0, ["fraud"])
        assert announce_once(spec) and not announce_once(spec)
