"""`tune(..., scheduler=)`: the trials of a search as tasks on a Dask cluster.

Each task runs its share of the trials with the same worker function as `n_jobs` processes do:
on its Dask worker it opens its own source from the settings and loads the study from the
registry's database, so every trial is a run of the registry, tagged with the worker that ran
it. The study stays where it always is; Dask only places the work.

Optuna's own `DaskStorage` (optuna-integration) keeps the study in the scheduler's memory
instead: the workers would still need the registry's database for the runs and the store for
the models, the study would be lost with the scheduler (no resuming), and it is experimental.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from modelyard._dask import scheduler_client
from modelyard._imports import require
from modelyard.errors import ConfigurationError, ModelyardError

if TYPE_CHECKING:
    from modelyard.settings import Settings

Work = Callable[..., None]
"""The worker function: `work(search, n_trials, seed, worker=address)`."""


@contextmanager
def dask_client(scheduler: Any) -> Iterator[Any]:
    """The `distributed.Client` to run tasks with: `scheduler` itself when it is one (left open), or
    a client of the scheduler at the address `scheduler` (`tcp://host:8786`), closed on exit."""
    distributed = require("distributed", extra="dask")
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler:
        raise ConfigurationError(
            f"scheduler={scheduler!r}: give a distributed.Client or a scheduler address (tcp://host:8786)"
        )
    with scheduler_client(scheduler, as_default=False) as client:
        yield client


def worker_threads(client: Any) -> int:
    """How many tasks the cluster runs at once (its workers' threads)."""
    threads = sum(client.nthreads().values())
    if threads == 0:
        raise ConfigurationError(f"the Dask cluster at {client.scheduler.address} has no workers")
    return int(threads)


def on_dask(
    client: Any,
    work: Work,
    search: Any,
    *,
    shares: list[int | None],
    seed: int | None,
    watch: Callable[[], None],
) -> None:
    """Run `work` once per share on the cluster (task `i` seeded `seed + i`), calling `watch`
    while they run; a task that raises is reported once the others are done."""
    tag, places = uuid.uuid4().hex[:8], _local_places(search.settings)
    futures = [
        client.submit(_share, work, search, share, None if seed is None else seed + index,
                      places, key=f"modelyard-tune-{tag}-{index}", pure=False, retries=0)
        for index, share in enumerate(shares)
    ]  # fmt: skip
    try:
        _wait(futures, watch)
    finally:
        client.cancel([future for future in futures if not future.done()])  # interrupted
    watch()
    _raise_errors(futures, search.study)


def _wait(futures: list[Any], watch: Callable[[], None]) -> None:
    for future in futures:  # each waits on its own client (which may not be the default)
        while True:  # the tasks' trials are reported as they finish
            try:
                future.exception(timeout=0.5)
                break
            except TimeoutError:
                watch()


def _raise_errors(futures: list[Any], study: str) -> None:
    errors = [
        (index, error)
        for index, future in enumerate(futures)
        if future.status == "error" and (error := future.exception()) is not None
    ]
    if errors and all(isinstance(error, ConfigurationError) for _, error in errors):
        raise errors[0][1]  # the same setting on every worker, such as a database it cannot see
    if errors:
        listed = "; ".join(f"task {i}: {type(error).__name__}: {error}" for i, error in errors)
        raise ModelyardError(
            f"tuning tasks on Dask stopped before their trials were done: {listed}; "
            f"study {study!r} keeps every trial they ran"
        )


def _share(
    work: Work, search: Any, n_trials: int | None, seed: int | None, places: dict[str, Path]
) -> None:  # pragma: no cover - runs on the workers, where coverage does not follow
    """One Dask task: `n_trials` trials (all until the timeout when None) on this worker."""
    from distributed import get_worker

    address = str(get_worker().address)
    for what, path in places.items():
        if not path.exists():  # another machine: opening it would make a new, empty one
            raise ConfigurationError(
                f"Dask worker {address} cannot see the {what} at {path}: on several machines "
                "keep the registry in PostgreSQL and the blobs in a shared store (docs/tune.md)"
            )
    work(search, n_trials, seed, worker=address)


def _local_places(settings: Settings) -> dict[str, Path]:
    """The registry's SQLite file and local store folder, where they exist here: a worker must
    see them too."""
    places = {
        "registry database": _sqlite_path(settings.database_url),
        "blob store": _file_path(settings.store_url),
    }
    return {what: path for what, path in places.items() if path is not None and path.exists()}


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def _file_path(url: str) -> Path | None:
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None
