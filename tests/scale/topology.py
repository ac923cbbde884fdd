"""The scale-out topology on loopback, with real processes (tests/scale/test_topology.py).

PostgreSQL of its own (so a restart disturbs nobody else), the suite's SeaweedFS as the blob
store, two `modelyard server` processes and three `modelyard serve` replicas behind nginx, and a
Prometheus scraping every replica. Every process runs in its own process group and is stopped by
its PID: SIGTERM, then SIGKILL. The nginx and Prometheus configurations come from
`nginx_config` and `prometheus_config`, which docs/scale.md quotes (a test keeps them equal).
The load the scenarios run under is in tests/scale/load.py.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
MODEL = "m"
ALIAS = "production"


def services() -> ModuleType:
    """scripts/services.py, whose PostgreSQL functions the topology reuses."""
    spec = importlib.util.spec_from_file_location("services", ROOT / "scripts" / "services.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# configurations (docs/scale.md quotes these, rendered with its example ports) -----------------


def nginx_config(*, port: int, replicas: Sequence[str], servers: Sequence[str], logs: str) -> str:
    """The load balancer: `/v2/` to the serving replicas, everything else to the registry
    servers, each pool round robin over keep-alive connections. A server that refuses the
    connection, times out or answers 502/503 is left out for 1 s and the request goes to the
    next one. Inference is retried even though it is a POST (`non_idempotent`): it changes
    nothing but the prediction log. Other POSTs (feedback, registry writes) are not: a client
    retries those itself, with an idempotency key where the API takes one. `X-Upstream` names
    the replicas tried; the last one answered."""
    replica_lines = "".join(f"        server {r} max_fails=1 fail_timeout=1s;\n" for r in replicas)
    server_lines = "".join(f"        server {s} max_fails=1 fail_timeout=1s;\n" for s in servers)
    return f"""worker_processes 1;
events {{
    worker_connections 1024;
}}
http {{
    access_log {logs}/access.log;
    client_body_temp_path {logs}/body;
    proxy_temp_path {logs}/proxy;
    fastcgi_temp_path {logs}/fastcgi;
    uwsgi_temp_path {logs}/uwsgi;
    scgi_temp_path {logs}/scgi;
    client_max_body_size 1g;

    upstream replicas {{
{replica_lines}        keepalive 32;
    }}
    upstream registry {{
{server_lines}        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_connect_timeout 1s;
        proxy_next_upstream_tries 3;

        location ~ ^/v2/models/[^/]+(/versions/[^/]+)?/infer$ {{
            proxy_pass http://replicas;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_read_timeout 10s;
            add_header X-Upstream $upstream_addr always;
        }}
        location /v2/ {{
            proxy_pass http://replicas;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_read_timeout 10s;
            add_header X-Upstream $upstream_addr always;
        }}
        location / {{
            proxy_pass http://registry;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_read_timeout 60s;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def prometheus_config(*, replicas: Sequence[str], servers: Sequence[str]) -> str:
    """Prometheus scrapes every serving replica's and every registry server's /metrics each
    second (no token: /metrics is open on both, auth or not)."""
    jobs = [("modelyard-serve", replicas)]
    if servers:
        jobs.append(("modelyard-server", servers))
    text = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
    for name, targets in jobs:
        listed = ", ".join(f"'{target}'" for target in targets)
        text += f"  - job_name: {name}\n    static_configs:\n      - targets: [{listed}]\n"
    return text


# processes ----------------------------------------------------------------------------------


@dataclass
class Process:
    """A command in its own process group, its output in `log`; stopped by its PID."""

    name: str
    command: list[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    ready: str = ""  # a URL answering 200 once the process is ready
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as output:
            self.popen = subprocess.Popen(
                self.command, env={**os.environ, **self.env}, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.ready, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.popen is None or self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {timeout:.0f} s: {self.tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """kill -9 of the whole process group (the crash a test needs)."""
        self.send(signal.SIGKILL)
        self.wait(10)

    def tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to the process's group."""
        if self.popen is not None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> bool:
        """Whether it exited within `timeout` s."""
        assert self.popen is not None
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


def stop_all(processes: Sequence[Process], timeout: float = 10) -> None:
    """SIGTERM to every process at once, then SIGKILL to those still running after `timeout`."""
    running = [p for p in processes if p.popen is not None and p.popen.poll() is None]
    for process in running:
        process.send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        began = time.monotonic()
        if not process.wait(max(0.1, deadline - time.monotonic())):
            process.kill()
        if time.monotonic() - began > 2:
            print(f"{process.name} took {time.monotonic() - began:.1f} s to stop", file=sys.stderr)


def modelyard(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelyard", *args]


# the topology -----------------------------------------------------------------------------------


@dataclass
class Topology:
    """Every process of the topology and where each answers."""

    root: Path
    pg_root: Path
    settings: dict[str, str]  # MODELYARD_* shared by every process (database, store, secret)
    servers: list[Process]
    replicas: list[Process]
    nginx: Process
    prometheus: Process
    url: str  # nginx
    prometheus_url: str
    configs: dict[str, str]
    timings: dict[str, float]  # seconds each phase of the start took

    def replica_address(self, index: int) -> str:
        return self.replicas[index].ready.split("/")[2]

    def server_address(self, index: int) -> str:
        return self.servers[index].ready.split("/")[2]

    def restart_postgres(self) -> None:
        log = str(self.pg_root / "pg" / "log")
        services().pg_ctl(self.pg_root, "-m", "fast", "-w", "-t", "60", "-l", log, "restart")

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql})
        answer.raise_for_status()
        return list(answer.json()["data"]["result"])


def store_settings(prefix: str) -> dict[str, str]:
    """The suite's SeaweedFS (scripts/services.py), under a prefix of this topology's own."""
    from tests.conftest import service_env

    return {
        "MODELYARD_STORE_URL": f"s3://{service_env('MODELYARD_TEST_S3_BUCKET')}/{prefix}",
        "MODELYARD_S3_ENDPOINT_URL": service_env("MODELYARD_TEST_S3_ENDPOINT_URL"),
        "MODELYARD_S3_ACCESS_KEY_ID": service_env("MODELYARD_TEST_S3_ACCESS_KEY_ID"),
        "MODELYARD_S3_SECRET_ACCESS_KEY": service_env("MODELYARD_TEST_S3_SECRET_ACCESS_KEY"),
        "MODELYARD_S3_REGION": "us-east-1",
    }


@contextmanager
def postgres(root: Path) -> Iterator[str]:
    """A PostgreSQL cluster of the topology's own (scripts/services.py's start_postgres), its
    database migrated; yields the SQLAlchemy URL and stops the cluster after."""
    from modelyard.registry import Database

    module = services()
    try:
        url = module.start_postgres(root)["MODELYARD_TEST_DATABASE_URL"]
        database = Database(url)
        database.open()
        database.migrate()
        database.close()
        yield url
    finally:
        module.stop_postgres(root)


@contextmanager
def topology(
    *,
    nginx: str,
    prometheus: str,
    rules: str,
    replicas: int = 3,
    servers: int = 2,
    env: Mapping[str, str] | None = None,
    register: Callable[[Mapping[str, str], Path], None] | None = None,
) -> Iterator[Topology]:
    """Start everything, yield the `Topology`, stop everything by PID (all at once).

    `rules`: the alert rules file (YAML text) every replica evaluates. `env`: more MODELYARD_*
    settings for every modelyard process. `register(settings, home)` registers what the
    replicas serve, in this process, while the registry servers start and before the replicas
    do (`settings`: the MODELYARD_* variables every process shares; `home`: a folder for it)."""
    timings: dict[str, float] = {}
    began = time.monotonic()

    def phase(name: str) -> None:
        nonlocal began
        timings[name] = round(time.monotonic() - began, 2)
        began = time.monotonic()

    with ExitStack() as stack:
        # /tmp, not pytest's tmp_path (mode 0700): the postgres and nobody users write here.
        root = Path(tempfile.mkdtemp(prefix="modelyard-topology-"))
        if not os.environ.get("MODELYARD_TEST_KEEP_TOPOLOGY"):  # set it to read the logs after
            stack.callback(shutil.rmtree, root, ignore_errors=True)
        root.chmod(0o755)
        pg_root = root / "postgres"
        pg_root.mkdir()
        database_url = stack.enter_context(postgres(pg_root))
        phase("postgres")
        settings = {
            "MODELYARD_DATABASE_URL": database_url,
            "MODELYARD_SECRET_KEY": secrets.token_hex(32),  # one audit key for every process
            **store_settings(f"topology-{uuid.uuid4().hex[:8]}"),
            **(env or {}),
        }
        (root / "rules.yaml").write_text(rules)
        ports = services().free_ports(servers + replicas + 2)
        server_ports, replica_ports = ports[:servers], ports[servers : servers + replicas]
        nginx_port, prometheus_port = ports[-2:]

        made: list[Process] = []
        stack.callback(stop_all, made)

        def process(name: str, args: list[str], ready: str, home: bool = True) -> Process:
            variables = {**settings, "MODELYARD_HOME": str(root / name)} if home else {}
            made.append(Process(name, args, root / f"{name}.log", variables, ready))
            return made[-1]

        server_list = [
            process(
                f"server-{i}",
                modelyard("server", "--port", str(port), "--log-level", "warning"),
                f"http://127.0.0.1:{port}/health",
            )  # fmt: skip
            for i, port in enumerate(server_ports)
        ]
        replica_list = [
            process(
                f"replica-{i}",
                modelyard(
                    "serve",
                    f"{MODEL}@{ALIAS}",
                    "--port",
                    str(port),
                    "--log-sample",
                    "1",
                    "--alerts",
                    str(root / "rules.yaml"),
                    "--log-level",
                    "warning",
                ),
                f"http://127.0.0.1:{port}/v2/health/ready",
            )  # fmt: skip
            for i, port in enumerate(replica_ports)
        ]
        logs = root / "nginx"
        logs.mkdir()
        configs = {
            "nginx.conf": nginx_config(
                port=nginx_port,
                logs=str(logs),
                replicas=[f"127.0.0.1:{p}" for p in replica_ports],
                servers=[f"127.0.0.1:{p}" for p in server_ports],
            ),  # fmt: skip
            "prometheus.yml": prometheus_config(
                replicas=[f"127.0.0.1:{p}" for p in replica_ports],
                servers=[f"127.0.0.1:{p}" for p in server_ports],
            ),
        }
        (logs / "nginx.conf").write_text(configs["nginx.conf"])
        shutil.chown(logs, "nobody")
        nginx_process = process(
            "nginx",
            # An unprivileged master: setpriv runs nginx itself as nobody (no fork, one PID).
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", nginx,
             "-p", str(logs), "-c", "nginx.conf", "-e", str(logs / "error.log"),
             "-g", f"daemon off; pid {logs}/nginx.pid;"],
            f"http://127.0.0.1:{nginx_port}/health",
            home=False,
        )  # fmt: skip
        (root / "prometheus.yml").write_text(configs["prometheus.yml"])
        prometheus_process = process(
            "prometheus",
            [prometheus, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            f"http://127.0.0.1:{prometheus_port}/-/ready",
            home=False,
        )  # fmt: skip
        for started in [*server_list, nginx_process, prometheus_process]:
            started.start()
        if register is not None:
            register(settings, root / "client")
            phase("register")
        for started in replica_list:
            started.start()
        for started in [*server_list, nginx_process, prometheus_process, *replica_list]:
            started.wait_ready(90)
        phase("processes ready")
        url = f"http://127.0.0.1:{nginx_port}"
        yield Topology(
            root=root, pg_root=pg_root, settings=settings, servers=server_list,
            replicas=replica_list, nginx=nginx_process, prometheus=prometheus_process,
            url=url, prometheus_url=f"http://127.0.0.1:{prometheus_port}", configs=configs,
            timings=timings,
        )  # fmt: skip
