"""`modelyard ui` as a real process: it prints its URL, answers `/` with the UI's HTML, stops
cleanly on SIGTERM, and refuses to serve beyond loopback without auth."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli.test_registry import run

URL = re.compile(r"modelyard UI at (http://127\.0\.0\.1:\d+/)")


def _wait_for_url(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """The URL the command printed, and everything it printed until then."""
    assert process.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    said = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = process.stderr.readline()
            said += line
            found = URL.search(line)
            if found:
                return found[1], said
        if process.poll() is not None:
            break
    raise AssertionError(f"no URL printed: {said}")


def test_ui_serves_the_pages_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home"), "MODELYARD_USER": "ana",
           "DISPLAY": ""}  # fmt: skip
    env.pop("MODELYARD_AUTH", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "ui", "--no-open"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        url, _ = _wait_for_url(process)
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>" in page.text and "modelyard" in page.text
        assert httpx.get(f"{url}health", timeout=5).json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()
    assert code == 0


def test_ui_refuses_an_outside_address_without_auth(tmp_path: Path) -> None:
    code, _, err = run("ui", "--host", "0.0.0.0", "--no-open")
    assert code != 0 and "refusing to serve" in err and "--auth" in err


def test_ui_help_names_its_options() -> None:
    code, out, _ = run("ui", "--help")
    assert code == 0
    for option in ("--port", "--host", "--open", "--no-open", "--auth"):
        assert option in out
