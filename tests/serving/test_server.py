"""The inference server as a real process on a loopback port: answers, a hot swap under a load
loop with no failed request, rollback, and a clean exit on SIGTERM."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from tests.flavors.pyfunc_models import Sleepy
from tests.servers import serving_process

X = np.zeros((1, 3), np.float32)
BODY = orjson.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
)


def constant(value: float) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=value).fit(np.zeros((2, 3)), [0, 0])


class LoadLoop(threading.Thread):
    """Sends requests back to back and records (status, version, value) for each answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}/v2/models/fraud/infer"
        self.answers: list[tuple[int, str, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(self.url, content=BODY)
                except httpx.TransportError:  # the server is gone: the test stopped it
                    self.answers.append((0, "gone", 0.0))
                    return
                body = response.json()
                if response.status_code == 200:
                    value = body["outputs"][0]["data"][0]
                    self.answers.append((200, body["model_version"], value))
                else:
                    self.answers.append((response.status_code, body.get("error", ""), 0.0))

    def until(self, version: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(a[1] == version for a in self.answers[-5:]):
            assert time.monotonic() < deadline, f"version {version} never answered"
            time.sleep(0.05)


def test_hot_swap_and_rollback_under_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(constant(1.0), name="fraud", input_example=X, alias="production")
        yard.log_model(constant(2.0), name="fraud", input_example=X)
        exits: list[int] = []
        env = {"MODELYARD_SERVE_POLL_SECONDS": "0.2"}
        with serving_process(home, "fraud@production", env=env, exit_codes=exits) as url:
            loop = LoadLoop(url)
            loop.start()
            loop.until("1")
            yard.set_alias("fraud", "production", "fraud:2")
            loop.until("2")
            time.sleep(0.5)
            yard.rollback("fraud", "production")
            loop.until("1")
            time.sleep(0.3)
            loop.stop.set()
            loop.join()
            metrics = httpx.get(f"{url}/metrics").text
    assert exits == [0]
    statuses = {status for status, _, _ in loop.answers}
    assert statuses == {200}, [a for a in loop.answers if a[0] != 200][:3]
    assert all(value == float(version) for _, version, value in loop.answers)
    versions = [version for _, version, _ in loop.answers]
    first_two, last_two = versions.index("2"), len(versions) - versions[::-1].index("2") - 1
    assert set(versions[first_two : last_two + 1]) == {"2"}  # once swapped, only the new one
    assert set(versions[last_two + 1 :]) == {"1"}  # after the rollback, only the old one
    assert 'modelyard_loaded_versions{model="fraud",version="1"} 1.0' in metrics
    assert 'version="2"} 1.0' not in metrics.split("modelyard_loaded_versions")[-1]


def test_sigterm_finishes_in_flight_requests(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(Sleepy(), name="fraud", input_example=X, alias="production")
    exits: list[int] = []
    answers: list[int] = []
    refused: list[httpx.ConnectError] = []

    def ask(url: str) -> None:
        try:
            response = httpx.post(f"{url}/v2/models/fraud/infer", content=BODY, timeout=30)
        except httpx.ConnectError as error:  # sent after SIGTERM closed the port: never accepted
            refused.append(error)
            return
        answers.append(response.status_code)

    with serving_process(home, "fraud@production", "--trust", exit_codes=exits) as url:
        askers = [threading.Thread(target=ask, args=(url,)) for _ in range(6)]
        for asker in askers:
            asker.start()
        # SIGTERM once one batch runs (0.5 s) and more requests wait: on a busy machine a
        # fixed pause may end before any request arrived.
        _wait_for_queue(url)
    for asker in askers:
        asker.join(timeout=30)
    assert exits == [0]
    assert answers == [200] * len(answers) and len(answers) >= 2, (answers, refused)
    assert len(answers) + len(refused) == 6  # none cut off mid-flight


def _wait_for_queue(url: str, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in httpx.get(f"{url}/metrics").text.splitlines():
            if line.startswith("modelyard_queue_depth{") and float(line.split()[-1]) >= 1:
                return
        time.sleep(0.02)
    raise AssertionError(f"no request waited for a batch within {timeout:g} s")


def test_worker_processes_share_the_port_and_add_up_their_metrics(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(constant(1.0), name="fraud", input_example=X, alias="production")
    exits: list[int] = []
    with serving_process(home, "fraud@production", "--workers", "2", exit_codes=exits) as url:
        with httpx.Client() as client:  # a new connection each time: the kernel spreads them
            for _ in range(20):
                response = client.post(f"{url}/v2/models/fraud/infer", content=BODY,
                                       headers={"connection": "close"})  # fmt: skip
                assert response.json()["outputs"][0]["data"] == [1.0]
        metrics = httpx.get(f"{url}/metrics").text
    assert 'modelyard_requests_total{code="200",model="fraud",version="1"} 20.0' in metrics
    assert exits == [0]
