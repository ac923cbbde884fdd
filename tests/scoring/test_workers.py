"""Each worker loads the model once, however many partitions it scores."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from modelyard import Yard
from modelyard.errors import InvalidDataFile, UntrustedModel
from modelyard.scoring import STAGES, ModelSpec, PartitionTask, local_cluster, plan_partitions
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
        done = [next(results) for _ in tasks]  # the plugin stays until the end
        per_worker = client.run(loads)
        assert sum(r.rows for r in done) == 4000 and len(done) == 16
        assert [list(counts.values()) for counts in per_worker.values()] in ([[1], [1]], [[1], []])
        # the partition that loaded the model counts the load's CPU; every one counts its stages
        assert sum("load" in r.cpu for r in done) == sum(
            map(sum, map(dict.values, per_worker.values()))
        )
        assert all(set(r.cpu) - {"load"} == set(STAGES) for r in done)
        assert all(r.cpu["predict"] > 0 for r in done)
        assert list(results) == []
        assert all(not counts for counts in client.run(loads).values())  # removed: memory freed


def cluster_settings() -> dict[str, Any]:
    import os

    import dask
    import numpy  # noqa: F401  (its BLAS, to be listed)
    from threadpoolctl import threadpool_info

    return {
        "profiler": dask.config.get("distributed.worker.profile.enabled"),
        "malloc_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        "threads": {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()},
    }


def test_the_local_cluster_is_set_up_for_one_cpu_bound_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A LocalCluster of its own (a few seconds): one thread per worker, BLAS and OpenMP held to
    one thread, no sampling profiler, glibc's own trimming of freed memory."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # set by an earlier cluster
    with local_cluster(1) as cluster, distributed.Client(cluster) as client:
        [found] = client.run(cluster_settings).values()
        assert list(client.nthreads().values()) == [1]
    assert found["profiler"] is False and found["malloc_trim"] is None
    assert found["threads"] and all(threads == 1 for threads in found["threads"].values())
    import dask

    assert dask.config.get("distributed.worker.profile.enabled") is True  # only the cluster's


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
