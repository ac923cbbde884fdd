"""Each worker loads the model once, however many partitions it scores."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from modelyard import Yard
from modelyard.errors import InvalidDataFile, UntrustedModel
from modelyard.scoring import ModelSpec, PartitionTask, plan_partitions
from modelyard.scoring._cluster import run_partitions
from tests.scoring.conftest import distributed, frame


def loads(dask_worker: Any) -> dict[str, int]:
    return {
        name: p.loads for name, p in dask_worker.plugins.items() if name.startswith("modelyard")
    }


def test_each_worker_loads_the_model_once(
    yard: Yard, version: str, scheduler: str, tmp_path: Path
) -> None:
    frame(4000).to_parquet(tmp_path / "in.parquet", row_group_size=250)
    (tmp_path / "out").mkdir()
    found = yard.get_version(version)
    assert found.manifest_digest is not None
    spec = ModelSpec(ref=found.ref, digest=found.manifest_digest, settings=yard.settings)
    partitions = plan_partitions([tmp_path / "in.parquet"], partition_rows=250)
    tasks = [PartitionTask(p, str(tmp_path / "out"), 100) for p in partitions]
    with distributed.Client(scheduler) as client:
        results = run_partitions(client, spec, tasks)
        rows = [next(results).rows for _ in tasks]  # the plugin stays until the end
        per_worker = client.run(loads)
        assert sum(rows) == 4000 and len(rows) == 16
        assert [list(counts.values()) for counts in per_worker.values()] in ([[1], [1]], [[1], []])
        assert list(results) == []
        assert all(not counts for counts in client.run(loads).values())  # removed: memory freed


def test_the_plugin_loads_once_and_frees_on_teardown(yard: Yard, version: str) -> None:
    from modelyard.scoring._plugin import ModelPlugin

    found = yard.get_version(version)
    assert found.manifest_digest is not None
    spec = ModelSpec(ref=found.ref, digest=found.manifest_digest, settings=yard.settings)
    plugin = pickle.loads(pickle.dumps(ModelPlugin(spec, name="p")))  # as a worker gets it
    first = plugin.model()
    assert plugin.model() is first and plugin.loads == 1
    scratch = first.model.folder
    assert scratch.is_dir() and not scratch.is_relative_to(yard.settings.home)
    plugin.teardown(None)
    assert not scratch.exists()


def test_errors_travel_back_as_their_own_class() -> None:
    from modelyard.scoring._plugin import CarriedError

    carried = pickle.loads(pickle.dumps(CarriedError.of(InvalidDataFile("x.csv", "no rows"))))
    error = carried.rebuilt()
    assert type(error) is InvalidDataFile and str(error) == "x.csv: no rows"
    assert error.path == "x.csv" and error.status_code == 400
    untrusted = CarriedError.of(UntrustedModel("model/code.py", kind="stored code")).rebuilt()
    assert isinstance(untrusted, UntrustedModel) and "model/code.py" in str(untrusted)
