"""Running partitions on Dask: an existing scheduler, or a LocalCluster of worker processes
(one thread each) for the length of one job."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from modelyard._imports import require
from modelyard.errors import ConfigurationError
from modelyard.scoring._model import ModelSpec
from modelyard.scoring._partition import PartitionResult, PartitionTask

#: Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT = 15


@contextmanager
def dask_client(scheduler: str | None, *, workers: int | None = None) -> Iterator[Any]:
    """A `distributed.Client` of the scheduler at `scheduler` (`tcp://host:port`), or of a
    LocalCluster of `workers` processes (default: one per CPU) closed on exit."""
    distributed = require("distributed", extra="dask")
    if scheduler:
        _check_reachable(scheduler)
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as error:
            raise ConfigurationError(
                f"cannot reach the Dask scheduler at {scheduler!r}: {error}"
            ) from None
        with client:
            yield client
        return
    count = workers or os.cpu_count() or 1
    if count < 1:
        raise ConfigurationError(f"workers must be at least 1, got {count}")
    with (
        distributed.LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",  # loopback only, ephemeral ports: the
            dashboard_address="127.0.0.1:0",  # scheduler serves /metrics even with no dashboard
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _check_reachable(scheduler: str) -> None:
    """Fail at once on a TCP address nothing listens at (the Dask client would retry until its
    timeout)."""
    parts = urlsplit(scheduler)
    if parts.scheme not in ("tcp", "") or parts.hostname is None or parts.port is None:
        return  # tls://, inproc://, …: the client says what is wrong
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise ConfigurationError(
            f"cannot reach the Dask scheduler at {scheduler!r}: {error}"
        ) from None


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
