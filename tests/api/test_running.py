"""Both servers in this process, stopped by SIGTERM once ready: the lines they print, and the
socket bound before anything loads."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from modelyard.api import listen, serve, serve_registry
from tests.servers import free_port


def stop_when_ready(url: str, answers: list[int]) -> threading.Thread:
    """A thread that asks `url` until it answers, then sends this process SIGTERM (which the
    server handles by draining and returning)."""

    def ask() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                answers.append(httpx.get(url, timeout=5).status_code)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread


def test_the_registry_server_says_where_and_when(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    answers: list[int] = []
    asker = stop_when_ready(f"http://127.0.0.1:{port}/health", answers)
    serve_registry(Settings(home=tmp_path / "home"), port=port)
    asker.join(timeout=30)
    err = capsys.readouterr().err.splitlines()
    assert answers == [200]
    assert err[0] == (
        f"registry at http://127.0.0.1:{port} (API reference at http://127.0.0.1:{port}/docs)"
    )
    assert err[1].startswith("ready in ") and err[1].endswith(" s (Ctrl-C to stop)")


def test_the_inference_server_says_what_each_reference_resolved_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(home=tmp_path / "home", server_log_level="warning")
    model = DummyRegressor(strategy="constant", constant=2.0).fit(np.zeros((2, 3)), [0, 0])
    with Yard(settings) as yard:
        yard.log_model(model, name="fraud", input_example=np.zeros((1, 3), np.float32),
                       alias="production")  # fmt: skip
        listener = listen("127.0.0.1", 0)
        url = listener.url()
        answers: list[int] = []
        asker = stop_when_ready(f"{url}/v2/health/ready", answers)
        serve(settings, ["fraud@production"], listener=listener, yard=yard)
        asker.join(timeout=30)
    assert answers == [200]
    loading, serving, ready = capsys.readouterr().err.splitlines()[:3]
    assert loading == f"loading fraud@production for {url} …"
    assert serving == f"serving fraud@production (fraud:1) at {url}/v2/models/fraud"
    assert ready.startswith("ready in ")
