"""`GET /metrics` of the registry server: route templates as labels, counts, workers added up."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelyard import Settings
from modelyard.api import create_app
from modelyard.api._registry_metrics import RegistryMetrics
from tests.asgi import in_process_client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with in_process_client(create_app(Settings(home=tmp_path, user="server"))) as client:
        client.base_url = httpx.URL("http://testserver")
        yield client


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def requests(text: str, route: str, method: str, code: int) -> float:
    key = (("code", str(code)), ("method", method), ("route", route))
    return samples(text, "modelyard_server_requests_total").get(key, 0.0)


def test_route_templates_label_the_requests(client: httpx.Client) -> None:
    for name in ("fraud", "churn", "spam"):
        assert client.get(f"/api/v1/models/{name}").status_code == 404
    assert client.get("/health").status_code == 200
    assert client.get("/no/such/path/x1").status_code == 404
    assert client.get("/no/such/path/x2").status_code == 404
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert requests(text, "/api/v1/models/{name}", "GET", 404) == 3
    assert requests(text, "/health", "GET", 200) == 1
    assert requests(text, "<unmatched>", "GET", 404) == 2
    assert "fraud" not in text and "x1" not in text  # no raw path, no model name
    latency = samples(text, "modelyard_server_request_seconds_count")
    assert latency[(("route", "/api/v1/models/{name}"),)] == 3
    assert samples(text, "modelyard_server_requests_in_flight") == {(): 0.0}
    assert "process_cpu_seconds_total" in text or sys.platform != "linux"
    second = client.get("/metrics").text
    assert requests(second, "/metrics", "GET", 200) == 1  # the scrape itself, once answered


def test_a_client_cannot_add_series(client: httpx.Client) -> None:
    before = client.get("/metrics").text
    for index in range(20):
        client.request(f"BREW{index}", f"/anything/{index}")
        client.get(f"/api/v1/models/model{index}/aliases/a{index}")
    text = client.get("/metrics").text
    series = samples(text, "modelyard_server_requests_total")
    assert len(series) <= len(samples(before, "modelyard_server_requests_total")) + 3
    assert (
        requests(text, "<unmatched>", "OTHER", 405) + requests(text, "<unmatched>", "OTHER", 404)
        == 20
    )


def test_metrics_need_no_token_with_auth_on(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, user="server", auth=True))
    with in_process_client(app) as client:
        client.base_url = httpx.URL("http://testserver")
        assert client.get("/api/v1/models").status_code == 401
        answer = client.get("/metrics")
        assert answer.status_code == 200
        assert requests(answer.text, "/api/v1/models", "GET", 401) == 1


_WORKER = """
import sys
from modelyard.api._registry_metrics import RegistryMetrics
metrics = RegistryMetrics()
assert metrics.folder == sys.argv[1]
for _ in range(int(sys.argv[2])):
    metrics.observe("/api/v1/models/{name}", "GET", 200, 0.01)
"""


def test_workers_counts_add_up(tmp_path: Path) -> None:
    # Each worker writes its counts to the shared folder (prometheus_client reads the variable
    # as it is imported: a process of its own each); any one worker's /metrics adds them up.
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(folder), str(count)], env=env)
               for count in (3, 4)]  # fmt: skip
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    text = RegistryMetrics(folder=str(folder)).exposition().decode()
    assert requests(text, "/api/v1/models/{name}", "GET", 200) == 7
    assert "process_cpu_seconds_total" not in text  # one worker's would pass for all of them
