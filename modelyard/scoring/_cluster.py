"""Running partitions on Dask: an existing scheduler, or a LocalCluster of worker processes
(one thread each) for the length of one job.

The LocalCluster is set up for one CPU-bound job on this machine: one process per core with
one task thread, BLAS and OpenMP held to one thread (Dask's defaults), and two of Dask's
defaults for long-lived shared workers turned off, as measured in `bench/score.py`: the
statistical profiler that samples every worker's stack every 10 ms, and
`MALLOC_TRIM_THRESHOLD_=65536`, which makes glibc hand freed memory back at once (and map every
large array afresh), so that each batch's arrays are faulted in page by page again: together
about a tenth of the workers' CPU on a random forest. A `MALLOC_TRIM_THRESHOLD_` set in this
process's environment is inherited as it is."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modelyard._dask import scheduler_client
from modelyard._imports import require
from modelyard.errors import ConfigurationError
from modelyard.scoring._model import ModelSpec
from modelyard.scoring._partition import PartitionResult, PartitionTask


@contextmanager
def dask_client(scheduler: str | None, *, workers: int | None = None) -> Iterator[Any]:
    """A `distributed.Client` of the scheduler at `scheduler` (`tcp://host:port`), or of a
    LocalCluster of `workers` processes (default: one per CPU) closed on exit."""
    distributed = require("distributed", extra="dask")
    if scheduler:
        with scheduler_client(scheduler) as client:
            yield client
        return
    with local_cluster(workers) as cluster, distributed.Client(cluster) as client:
        yield client


#: Dask settings of the LocalCluster a job starts (see the module docstring).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,  # None: not set
}


@contextmanager
def local_cluster(workers: int | None = None) -> Iterator[Any]:
    """A LocalCluster of `workers` one-thread worker processes (default: one per CPU) on the
    loopback interface, set up for scoring (`LOCAL_CLUSTER_CONFIG`), closed on exit."""
    distributed = require("distributed", extra="dask")
    dask = require("dask", extra="dask")
    count = workers or os.cpu_count() or 1
    if count < 1:
        raise ConfigurationError(f"workers must be at least 1, got {count}")
    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read as the nannies and workers start
        cluster = distributed.LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",  # loopback only, ephemeral ports: the
            dashboard_address="127.0.0.1:0",  # scheduler serves /metrics even with no dashboard
            silence_logs=logging.ERROR,
        )
    with cluster:
        yield cluster


def run_partitions(
    client: Any, spec: ModelSpec, tasks: list[PartitionTask]
) -> Iterator[PartitionResult]:
    """Score `tasks` on the client's workers, each loading the model once (a worker plugin,
    removed at the end); results come as partitions finish. The first error cancels the rest
    and is raised as its own class."""
    distributed = require("distributed", extra="dask")
    from modelyard.scoring._plugin import CarriedError, ModelPlugin, score_on_worker

    name = f"modelyard-score-{spec.digest.removeprefix('sha256:')[:16]}-{uuid.uuid4().hex[:8]}"
    client.register_plugin(ModelPlugin(spec, name=name), name=name)
    futures = client.map(score_on_worker, tasks, plugin=name, pure=False)
    try:
        for future in distributed.as_completed(futures):
            outcome = future.result()
            if isinstance(outcome, CarriedError):
                raise outcome.rebuilt()
            yield outcome
    finally:
        client.cancel(futures)
        client.unregister_worker_plugin(name)
