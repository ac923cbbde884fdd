"""A request that makes the model raise fails alone, under concurrent load on a real server:
every innocent request batched with it gets 200 and its own answer, the poison request a 4xx
with its own error, and no answer or error quotes another request's values."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelyard import Settings, Yard
from tests.servers import serving_process
from tests.serving.poison_models import Careless, labels

NUMBER = re.compile(r"-?\d+\.\d+")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("poison") / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(Careless(), name="careless", input_example=np.ones((2, 3)))
        yard.log_model(Careless(ragged=True), name="ragged", input_example=np.ones((1, 3)),
                       options={"init": {"ragged": True}})  # fmt: skip
    with serving_process(home, "careless:1", "ragged:1", "--trust") as served:
        yield served


def row(number: int, *, poison: bool) -> list[float]:
    """Values that only this request sends (and, poisoned, one negative among them)."""
    values = [number + 0.25, number + 0.5, number + 0.75]
    if poison:
        values[1] = -values[1]
    return values


@pytest.mark.parametrize(("model", "clients"), [("careless", 20), ("careless", 64), ("ragged", 20)])
def test_a_poison_request_fails_alone_under_load(url: str, model: str, clients: int) -> None:
    total = clients * 6
    poisoned = set(random.Random(clients).sample(range(total), 10))
    rows = {number: row(10_000 * len(model) + 1000 * clients + number, poison=number in poisoned)
            for number in range(total)}  # fmt: skip
    answers: dict[int, tuple[int, dict]] = {}
    start = threading.Barrier(clients)

    def client(numbers: list[int]) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            start.wait()
            for number in numbers:
                tensor = {"name": "input-0", "datatype": "FP64", "shape": [1, 3],
                          "data": rows[number]}  # fmt: skip
                response = http.post(f"/v2/models/{model}/infer", json={"inputs": [tensor]})
                answers[number] = (response.status_code, response.json())

    threads = [threading.Thread(target=client, args=(list(range(i, total, clients)),))
               for i in range(clients)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == total
    for number, (status, body) in answers.items():
        own = rows[number]
        if number in poisoned:
            assert status == 422 and body["code"] == "input_rejected", body
            assert "ValueError: negative values in" in body["error"]
            assert [float(n) for n in NUMBER.findall(body["error"])] == own  # its values only
        else:
            assert status == 200, (status, body)
            expected = labels(own) if model == "ragged" else [sum(own)]
            assert body["outputs"][0]["data"] == expected
    lines = [line for line in httpx.get(f"{url}/metrics").text.splitlines()
             if line.startswith("modelyard_batch_rows") and f'model="{model}"' in line]  # fmt: skip
    alone = next(line for line in lines if 'le="1.0"' in line)
    count = next(line for line in lines if line.startswith("modelyard_batch_rows_count"))
    assert float(alone.split()[-1]) < float(count.split()[-1])  # some batches held several
