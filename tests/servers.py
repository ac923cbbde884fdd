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
    home: Path, database_url: str | None = None, *, exit_codes: list[int] | None = None
) -> Iterator[str]:
    """`modelyard server` in its own process; yields its URL, stops it with SIGTERM after and
    appends its exit code to `exit_codes` when given."""
    port = free_port()
    env = {**os.environ, "MODELYARD_HOME": str(home / "server-home")}
    if database_url:
        env["MODELYARD_DATABASE_URL"] = database_url
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "server", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(home / 'server.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        code = process.wait(timeout=15)
        log.close()
        if exit_codes is not None:
            exit_codes.append(code)


@contextmanager
def serving_process(
    home: Path, *args: str, env: dict[str, str] | None = None, exit_codes: list[int] | None = None
) -> Iterator[str]:
    """`modelyard serve ARGS` in its own process on a free loopback port; yields its URL once
    ready, stops it with SIGTERM after and appends its exit code to `exit_codes` when given."""
    port = free_port()
    environment = {**os.environ, "MODELYARD_HOME": str(home), **(env or {})}
    log = (home.parent / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "serve", *args, "--port", str(port)],
        env=environment, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"serve did not start: {(home.parent / 'serve.log').read_text()}"
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        code = process.wait(timeout=30)
        log.close()
        if exit_codes is not None:
            exit_codes.append(code)
