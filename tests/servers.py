"""Start a real `modelyard server` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    home: Path,
    database_url: str | None = None,
    *,
    exit_codes: list[int] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """`modelyard server` in its own process; yields its URL, stops it with SIGTERM after and
    appends its exit code to `exit_codes` when given. `env`: more MODELYARD_* settings."""
    env = {"MODELYARD_HOME": str(home / "server-home"), **(env or {})}
    if database_url:
        env["MODELYARD_DATABASE_URL"] = database_url
    with _process(["server"], env=env, log=home / "server.log", ready="/health",
                  timeout=30, exit_codes=exit_codes) as url:  # fmt: skip
        yield url


@contextmanager
def serving_process(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    exit_codes: list[int] | None = None,
    log: Path | None = None,
) -> Iterator[str]:
    """`modelyard serve ARGS` in its own process on a free loopback port; yields its URL once
    ready, stops it with SIGTERM after and appends its exit code to `exit_codes` when given.
    `log`: where its output goes (default `serve.log` beside the home; give each of several
    processes on one home its own)."""
    with _process(["serve", *args], env={"MODELYARD_HOME": str(home), **(env or {})},
                  log=log or home.parent / "serve.log", ready="/v2/health/ready", timeout=60,
                  exit_codes=exit_codes) as url:  # fmt: skip
        yield url


@contextmanager
def _process(
    command: list[str],
    *,
    env: dict[str, str],
    log: Path,
    ready: str,
    timeout: float,
    exit_codes: list[int] | None,
) -> Iterator[str]:
    """`modelyard COMMAND --port P`, waited for until `ready` answers 200, stopped with SIGTERM."""
    port = free_port()
    output = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", *command, "--port", str(port)],
        env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}{ready}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start: {log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        code = process.wait(timeout=30)
        output.close()
        if exit_codes is not None:
            exit_codes.append(code)
