"""`modelyard monitor report` on a model whose input is an embedding (16 wide): the reference
vectors are stored at registration and the report shows the MMD test's table and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
from sklearn.linear_model import LogisticRegression

from modelyard import Yard
from tests.cli.test_registry import home, ok
from tests.monitoring.test_embeddings import cloud

_ = home  # the autouse fixture: a fresh MODELYARD_HOME per test


def test_report_shows_embedding_drift(home: Path) -> None:
    rng = np.random.default_rng(12)
    reference = cloud(rng, 600)
    with Yard() as yard:
        model = LogisticRegression().fit(reference, reference[:, 0] > 0)
        version = yard.log_model(model, name="vec", input_example=reference[:2],
                                 reference_data=reference)  # fmt: skip
        folder = yard.load_model(version.ref).folder
    assert (folder / "monitoring/reference_embeddings.json").is_file()
    assert not (folder / "monitoring/reference_text.json").exists()
    window = cloud(rng, 400, rotation=0.8)
    now = datetime.now(UTC)
    record = {"id": "r", "model": "vec", "version": "1", "time": now.isoformat(),
              "inputs": {"input-0": window.tolist()},
              "outputs": {"output-0": (window[:, 0] > 0).tolist()}}  # fmt: skip
    logs = home / "predictions" / "vec" / "1"
    logs.mkdir(parents=True)
    (logs / f"{now.date().isoformat()}.jsonl").write_bytes(orjson.dumps(record) + b"\n")
    table = ok("monitor", "report", "vec", "--window", "10m")
    assert "embeddings (MMD test): 1 of 1 drifted" in table
    row = next(line for line in table.splitlines() if line.startswith("input-0 "))
    assert row.split()[1:4] == ["inputs", "16", "500/400"] and row.split()[-1] == "yes"
    report = json.loads(ok("monitor", "report", "vec", "--window", "10m", "--json"))
    (embedding,) = report["embeddings"]
    assert embedding["name"] == "input-0" and embedding["p_value"] < 0.05
    assert report["text"] == []
