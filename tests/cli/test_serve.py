"""`modelyard serve` and `modelyard server`: options refused before a port is bound, a port in
use refused before any model loads, and, as a real process, what they print on stderr: where
they listen, what each reference resolved to, the ready line and one line per request (the
serving itself is tested end to end in tests/serving/test_server.py)."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from tests.cli.test_registry import home, run
from tests.servers import free_port

_ = home  # the autouse fixture: a fresh MODELYARD_HOME per test

BODY = orjson.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
)


def test_bad_canary_share() -> None:
    code, _, err = run("serve", "fraud@production", "--canary", "fraud:2=lots")
    assert code == 2 and "expected REF=SHARE such as fraud:4=10%" in err


def test_out_of_range_option() -> None:
    code, _, err = run("serve", "fraud", "--log-sample", "2")
    assert code == 1 and "--log-sample: Input should be less than or equal to 1" in err


def test_bad_reference_and_canary_share_range() -> None:
    code, _, err = run("serve", "fraud@@x", "--port", "0")
    assert code == 1 and "invalid reference" in err
    code, _, err = run("serve", "fraud", "--canary", "fraud:2=150%")
    assert code == 1 and "between 0 and 1, got 1.5" in err


def test_bad_log_level() -> None:
    code, _, err = run("serve", "fraud", "--log-level", "loud")
    assert code == 2 and "'loud' is not one of" in err


@pytest.fixture
def served_home(home: Path) -> Path:
    model = DummyRegressor(strategy="constant", constant=2.0).fit(np.zeros((2, 3)), [0, 0])
    with Yard(Settings(home=home)) as yard:
        yard.log_model(model, name="iris", input_example=np.zeros((1, 3), np.float32))
        yard.log_model(model, name="iris", input_example=np.zeros((1, 3), np.float32),
                       alias="production")  # fmt: skip
    return home


@pytest.mark.parametrize("command", ["serve", "server"])
def test_a_port_in_use_is_refused_at_once(served_home: Path, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["iris@production"] if command == "serve" else []
        started = time.monotonic()
        code, _, err = run(command, *args, "--port", str(port))
        elapsed = time.monotonic() - started
    assert code == 1
    assert err.strip() == (
        f"error: 127.0.0.1:{port} is already in use: stop what listens there, or pick another "
        "--port"
    )
    assert elapsed < 5  # refused before anything loads (the subprocess test: not a line more)


def test_a_port_in_use_fails_the_process_before_loading(served_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "modelyard", "serve", "iris", "--port", str(port)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: 127.0.0.1:{port} is already in use: stop what listens there, or pick another "
        "--port"
    ]


class Process:
    """A server process whose stderr lines arrive in a queue as it prints them."""

    def __init__(self, args: list[str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "modelyard", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.put(line.rstrip("\n"))

    def until(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        """The first line (from here on) matching `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matched {pattern!r}; seen: {self.seen}") from None
            self.seen.append(line)
            match = re.search(pattern, line)
            if match is not None:
                return match

    def stop(self) -> int:
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout=60)
        self.reader.join(timeout=10)  # it has read the last lines
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


@contextmanager
def process(*args: str) -> Iterator[Process]:
    started = Process(list(args))
    try:
        yield started
    finally:
        if started.popen.poll() is None:
            started.popen.kill()
            started.popen.wait()
        started.reader.join(timeout=10)
        assert started.popen.stderr is not None
        started.popen.stderr.close()


def test_serve_says_where_what_and_when_then_logs_each_request(served_home: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process("serve", "iris@production", "iris:1", "--port", str(port)) as server:
        server.until(rf"^loading iris@production, iris:1 for {url} …$")
        server.until(rf"^serving iris@production \(iris:2\) at {url}/v2/models/iris$")
        server.until(rf"^serving iris:1 at {url}/v2/models/iris$")
        server.until(r"^ready in \d+\.\d s \(Ctrl-C to stop\)$")
        answer = httpx.post(f"{url}/v2/models/iris/infer", content=BODY, timeout=30)
        assert answer.status_code == 200
        server.until(r" 127\.0\.0\.1 POST /v2/models/iris/infer 200 \d+\.\d ms$", timeout=10)
        httpx.get(f"{url}/v2/models/nothing%1b[31m", timeout=30)
        server.until(r" GET /v2/models/nothing%1b\[31m 404 ", timeout=10)
        assert server.stop() == 0


def test_workers_print_the_ready_line_once_and_warning_hides_requests(served_home: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "iris", "--port", str(port), "--workers", "2", "--log-level", "warning"]
    with process(*args) as server:
        server.until(rf"^serving iris \(iris:2\) at {url}/v2/models/iris$")
        server.until(r"^ready in ")
        for _ in range(4):
            assert httpx.post(f"{url}/v2/models/iris/infer", content=BODY).status_code == 200
        time.sleep(5)  # the other worker is ready by now, and prints no second ready line
        assert server.stop() == 0
    assert sum(line.startswith("ready in ") for line in server.seen) == 1
    assert not [line for line in server.seen if " ms" in line], server.seen


def test_server_says_where_it_listens_and_logs_each_request(served_home: Path) -> None:
    with process("server", "--port", "0") as server:
        url = server.until(r"^registry at (http://127\.0\.0\.1:\d+) \(API reference at ")[1]
        server.until(r"^ready in \d+\.\d s")
        assert httpx.get(f"{url}/health").status_code == 200
        server.until(r" 127\.0\.0\.1 GET /health 200 \d+\.\d ms$", timeout=10)
        assert server.stop() == 0
