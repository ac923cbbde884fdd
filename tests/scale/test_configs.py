"""docs/scale.md quotes the nginx and Prometheus configurations the topology test runs with
(rendered with the page's example ports), and both are valid for nginx and promtool."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import service_env
from tests.docs_runner import parse
from tests.scale.topology import ROOT, nginx_config, prometheus_config

PAGE = ROOT / "docs" / "scale.md"
REPLICAS = ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]
SERVERS = ["127.0.0.1:8091", "127.0.0.1:8092"]
NGINX = nginx_config(port=8000, replicas=REPLICAS, servers=SERVERS, logs="/srv/modelyard-lb")
PROMETHEUS = prometheus_config(replicas=REPLICAS, servers=SERVERS)


def quoted(lang: str) -> list[str]:
    return [block.code for block in parse(PAGE.read_text()) if block.lang == lang]


def test_the_page_quotes_the_nginx_config_the_test_runs() -> None:
    assert NGINX.rstrip("\n") in [code.rstrip("\n") for code in quoted("nginx")]


def test_the_page_quotes_the_prometheus_config_the_test_runs() -> None:
    assert PROMETHEUS.rstrip("\n") in [code.rstrip("\n") for code in quoted("yaml")]


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the topology runs nginx as nobody: root")
    logs = tmp_path / "lb"
    logs.mkdir()
    (logs / "nginx.conf").write_text(
        nginx_config(port=8000, replicas=REPLICAS, servers=SERVERS, logs=str(logs))
    )
    check = subprocess.run(
        [service_env("MODELYARD_TEST_NGINX"), "-t", "-q", "-p", str(logs), "-c", "nginx.conf",
         "-e", str(logs / "error.log"), "-g", f"pid {logs}/nginx.pid;"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_promtool_accepts_the_config(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS)
    promtool = service_env("MODELYARD_TEST_PROMTOOL")
    check = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                           text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_services_stop_only_what_they_started() -> None:
    """scripts/services.py stops its services by PID (or by their data folder, or through the
    init system for a package's own service), never by a process name: `pkill -x prometheus`
    would stop a developer's own Prometheus too."""
    script = (ROOT / "scripts" / "services.py").read_text()
    for by_name in ("pkill", "killall", "pgrep"):
        assert f'"{by_name}"' not in script, by_name
