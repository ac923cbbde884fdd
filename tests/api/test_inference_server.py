"""`serve(..., workers=N)` launches its worker processes and, once they have stopped, leaves this
process's environment exactly as it found it (secrets included)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
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
