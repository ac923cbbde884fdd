"""Real OCI registries for the deploy tests: the CNCF distribution registry (`docker-registry`).

`oci_registry` is open; `oci_registry_auth` asks for htpasswd basic auth. Both are session-scoped
and serve plain HTTP on loopback, which modelyard allows without an allow-list entry.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.conftest import service_env


@dataclass(frozen=True)
class OciRegistry:
    """One running registry: where it listens, its credentials and its storage folder."""

    host: str
    root: Path
    username: str | None = None
    password: str | None = None

    def url(self, repo: str, tag: str = "latest") -> str:
        """`oci://HOST/repo:tag` for this registry."""
        return f"oci://{self.host}/{repo}:{tag}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(*, root: Path, port: int, htpasswd: Path | None) -> str:
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: modelyard-test\n    path: {htpasswd}\n"
    return (
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"{auth}"
    )


def _wait_ready(proc: subprocess.Popen[bytes], host: str, expected: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited early: {log.read_text()[-2000:]}", pytrace=False)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{host}/v2/", timeout=2).status_code == expected:
                return
        time.sleep(0.1)
    pytest.fail(f"docker-registry did not answer /v2/ on {host}", pytrace=False)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def start_registry(
    base: Path, *, username: str | None = None, password: str | None = None
) -> Iterator[OciRegistry]:
    """Run a docker-registry storing under `base` until the block ends (benchmarks use it too)."""
    binary = service_env("MODELYARD_TEST_DOCKER_REGISTRY")
    root = base / "storage"
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if username is not None and password is not None:
        htpasswd = base / "htpasswd"
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        htpasswd.write_text(f"{username}:{hashed}\n")
    port = _free_port()
    config = base / "config.yml"
    config.write_text(_config(root=root, port=port, htpasswd=htpasswd))
    log = base / "registry.log"
    host = f"127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=out)
    try:
        _wait_ready(proc, host, 401 if htpasswd else 200, log)
        yield OciRegistry(host=host, root=root, username=username, password=password)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    """An open registry (no auth) on a free loopback port."""
    with start_registry(tmp_path_factory.mktemp("oci-open")) as registry:
        yield registry


@pytest.fixture(scope="session")
def oci_registry_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    """A registry that asks for htpasswd basic auth; `.username`/`.password` get in."""
    base = tmp_path_factory.mktemp("oci-auth")
    with start_registry(base, username="yard", password=secrets.token_urlsafe(12)) as registry:
        yield registry
