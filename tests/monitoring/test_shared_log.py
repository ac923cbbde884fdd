"""Shared monitoring on PostgreSQL: replicas serving from one registry database log into it, so
a plain PostgreSQL `Yard` and a `Yard(url=…)` of a registry server on it see every replica's
requests in one window (and the feedback any of them received).

Replicas: one in-process inference app on the database, one `modelyard serve` process on it
(another pid: another replica), and one in-process app serving from the registry server
(`MODELYARD_URL`), whose log goes over HTTP. About 10 s, most of it the serve process starting.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard.api import create_app
from tests.asgi import in_process_client, serving
from tests.servers import serving_process

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(21)
REFERENCE = RNG.normal(size=(300, 3)).astype(np.float32)
SECRET = "shared-monitoring-test-secret-0123456789"


def body(rows: np.ndarray[Any, Any]) -> bytes:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP32",
              "data": rows.ravel().tolist()}  # fmt: skip
    return orjson.dumps({"inputs": [tensor]})


def rows(count: int) -> list[np.ndarray[Any, Any]]:
    return list(RNG.normal(size=(count, 5, 3)).astype(np.float32))


async def test_every_replica_s_requests_are_in_one_window(
    fresh_postgres: str, tmp_path: Path
) -> None:
    blobs = (tmp_path / "blobs").as_uri()

    def settings(name: str, **more: Any) -> Settings:
        return Settings(home=tmp_path / name, database_url=fresh_postgres, store_url=blobs,
                        secret_key=SECRET, serve_log_sample=1.0, **more)  # fmt: skip

    local = Yard(settings("a"))
    model = LogisticRegression().fit(REFERENCE, (REFERENCE[:, 0] > 0).astype(int))
    local.log_model(model, name="fraud", input_example=REFERENCE[:2], reference_data=REFERENCE,
                    alias="production")  # fmt: skip
    ids = []
    async with serving(local, "fraud@production") as replica:  # replica 1, in-process
        for batch in rows(12):
            answer = await replica.post("/v2/models/fraud/infer", content=body(batch))
            ids.append(answer.json()["id"])
        feedback = await replica.post("/v2/models/fraud/feedback",
                                      json={"id": ids[0], "label": [1, 0, 1, 0, 1]})  # fmt: skip
        assert feedback.is_success
    env = {"MODELYARD_DATABASE_URL": fresh_postgres, "MODELYARD_STORE_URL": blobs,
           "MODELYARD_SECRET_KEY": SECRET}  # fmt: skip
    with serving_process(tmp_path / "b", "fraud@production", "--log-sample", "1", env=env) as url:
        for batch in rows(10):  # replica 2: another process
            assert httpx.post(f"{url}/v2/models/fraud/infer", content=body(batch)).is_success
    # The stop above flushed its log; replica 3 serves from a registry server on the database.
    with in_process_client(create_app(settings("server"))) as client:
        remote = Yard(settings("c"), url="http://testserver", http_client=client)
        async with serving(remote, "fraud@production") as replica:
            for batch in rows(8):
                answer = await replica.post("/v2/models/fraud/infer", content=body(batch))
                assert answer.is_success
        remote.log_feedback("fraud", ids[1], [0, 0, 0, 0, 0])
        over_http = remote.monitor("fraud@production", window=timedelta(minutes=10))
        page = tmp_path / "report.html"
        remote.monitor("fraud@production", window=timedelta(minutes=10), page=page)
        assert "fraud:1 drift" in page.read_text()
    reader = Yard(settings("reader"))
    direct = reader.monitor("fraud@production", window=timedelta(minutes=10))
    # The in-process replicas share this test's pid; the serve process is another replica.
    assert (direct.requests, direct.rows, direct.replicas) == (30, 150, 2)
    assert over_http.model_dump(exclude={"until", "since"}) == direct.model_dump(
        exclude={"until", "since"}
    )
    assert direct.performance is not None and direct.performance.rows == 10
    assert not (tmp_path / "a" / "predictions").exists()  # nothing went to a home's files
    for yard in (local, remote, reader):
        yard.close()
