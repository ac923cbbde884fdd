"""The registry server's monitoring routes in-process: a replica's batches and feedback are
stored only whole and only for an editor; crafted batches get 4xx and store nothing; a reader
gets the report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard.api import create_app
from modelyard.monitoring import FileLogStore, MonitorReport
from modelyard.registry import Database, Principals
from tests.asgi import in_process_client

RNG = np.random.default_rng(5)
REFERENCE = RNG.normal(size=(300, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, dict[str, dict[str, str]], Path]]:
    """A registry server with auth on (SQLite: its log is files under its home), a model
    `fraud` with one version, and tokens: an editor and a reader of `fraud`."""
    home = tmp_path_factory.mktemp("monitor-routes") / "home"
    settings = Settings(home=home, auth=True, auth_cache_seconds=0,
                        server_max_body_bytes=64 * 1024)  # fmt: skip
    with Yard(settings) as yard:
        model = LogisticRegression().fit(REFERENCE, (REFERENCE[:, 0] > 0).astype(int))
        yard.log_model(model, name="fraud", input_example=REFERENCE[:2], reference_data=REFERENCE,
                       alias="production")  # fmt: skip
    database = Database(settings.database_url)
    database.open()
    principals = Principals(database, actor="test")
    tokens = {}
    for user, role in (("eve", "editor"), ("rita", "reader")):
        principals.grant(user, role, models="fraud")
        tokens[role] = {"Authorization": f"Bearer {principals.create_token(user=user).secret}"}
    database.close()
    with in_process_client(create_app(settings)) as client:
        client.base_url = httpx.URL("http://testserver/api/v1")
        yield client, tokens, home


def record(**changes: Any) -> dict[str, Any]:
    base = {"id": "r1", "model": "fraud", "version": "1",
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"), "latency_ms": 2.0,
            "inputs": {"input-0": [[0.1, 0.2]]}, "outputs": {"output-0": [1]}}  # fmt: skip
    return {**base, **changes}


def batch(*records: dict[str, Any]) -> bytes:
    return orjson.dumps({"replica": "host:1", "records": list(records)})


def stored(home: Path) -> tuple[int, dict[str, Any]]:
    """How many records the server's log holds, and its feedback."""
    store = FileLogStore(home / "predictions", home / "feedback")
    since = datetime(2020, 1, 1, tzinfo=UTC)
    records = store.read_records("fraud", "1", since=since, until=datetime.now(UTC))
    return len(list(records)), store.read_feedback("fraud", since=since)


def test_an_editor_writes_and_a_reader_reads_the_report(server: Any) -> None:
    client, tokens, home = server
    before = stored(home)[0]
    sent = client.post("/models/fraud/predictions", content=batch(record(), record(id="r2")),
                       headers=tokens["editor"])  # fmt: skip
    assert sent.status_code == 204
    labelled = client.post("/models/fraud/feedback", json={"id": "r1", "label": 1},
                           headers=tokens["editor"])  # fmt: skip
    assert labelled.status_code == 204
    answer = client.get("/monitor", params={"ref": "fraud@production"}, headers=tokens["reader"])
    report = MonitorReport.model_validate_json(answer.content)
    assert (report.requests - before, report.version) == (2, 1)
    page = client.get("/monitor", params={"ref": "fraud:1", "format": "html"},
                      headers=tokens["reader"])  # fmt: skip
    assert page.status_code == 200 and "sandbox" in page.headers["content-security-policy"]
    assert stored(home) == (before + 2, {"r1": 1})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "a prediction batch is"),
        (batch(), "1 to 10000 records"),
        (batch(record(), record(version=1)), "record 1: version must be"),
        (batch(record(version="../../x")), "version must be"),
        (batch(record(version="7")), "fraud has no version 7"),
        (batch(record(inputs=[1, 2])), "inputs must be an object"),
        (batch(record(time="yesterday")), "time must be an ISO 8601"),
        (batch(record(time="2026-01-01T00:00:00")), "with its UTC offset"),
        (batch(record(latency_ms="fast")), "latency_ms must be a number"),
        (batch(record(id=["r1"])), "id must be a string"),
        (batch(record(model="../../etc")), "its model is not 'fraud'"),
        (batch(record(extra="x")), "a record is an object with the keys"),
        (orjson.dumps({"replica": ["x"], "records": [record()]}), "replica is a string"),
    ],
)
def test_a_crafted_batch_is_refused_whole(server: Any, body: bytes, message: str) -> None:
    client, tokens, home = server
    before = stored(home)
    answer = client.post("/models/fraud/predictions", content=body, headers=tokens["editor"])
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert stored(home) == before


def test_roles_sizes_and_names(server: Any) -> None:
    client, tokens, home = server
    before = stored(home)
    body = batch(record())
    assert client.post("/models/fraud/predictions", content=body).status_code == 401
    for path in ("/models/fraud/predictions", "/models/fraud/feedback"):
        refused = client.post(path, content=body, headers=tokens["reader"])
        assert refused.status_code == 403
    huge = batch(*[record(id=f"r{i}") for i in range(2000)])  # over the 64 KiB limit
    assert client.post("/models/fraud/predictions", content=huge,
                       headers=tokens["editor"]).status_code == 413  # fmt: skip
    for name in ("..", "..%2F..%2Fetc", "other"):
        tricked = client.post(f"/models/{name}/predictions", content=batch(record(model=name)),
                              headers=tokens["editor"])  # fmt: skip
        assert 400 <= tricked.status_code < 500, name
    bad_feedback = client.post("/models/fraud/feedback", content=b'{"id": 3}',
                               headers=tokens["editor"])  # fmt: skip
    assert bad_feedback.status_code == 400
    unknown = client.get("/monitor", params={"ref": "fraud@nowhere"}, headers=tokens["reader"])
    assert unknown.status_code == 404
    too_long = client.get("/monitor", params={"ref": "fraud:1", "window_seconds": 1e9},
                          headers=tokens["reader"])  # fmt: skip
    assert too_long.status_code == 400
    assert stored(home) == before
