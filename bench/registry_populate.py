"""Filling our registry for `bench/registry.py`: `Registry.create_version` for every version,
committed 1,000 at a time.

Registering through the public API one transaction per version costs what the `register` row
says (a few ms on these machines, mostly the commit and, on PostgreSQL, the round trips), so
100,000 versions would take five to ten minutes. `populate` calls the same public method with
the same arguments, but over a `OneTransaction` that hands every write the same open
transaction, so the rows written (versions, search rows, lineage, the audit chain) are exactly
what one call per version writes; only the commits are batched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from registry_mlflow import MODEL, OTHER, version_contents
from sqlalchemy import Connection

from modelyard.errors import ModelNotFound
from modelyard.registry import Database, Registry

BATCH = 1_000
"""Versions per transaction."""


class OneTransaction:
    """A `Database` whose reads and writes all use one open connection, inside its transaction.

    Only for filling a registry in bulk: nothing commits until the caller's transaction does.
    """

    def __init__(self, database: Database, connection: Connection) -> None:
        self._database, self._connection = database, connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """The open connection (its transaction is the caller's)."""
        yield self._connection

    read = write


def version_count(registry: Registry, model: str) -> int:
    """How many versions `model` has (numbers are gap-free and nothing is deleted here)."""
    try:
        return registry.get_model(model).latest_version
    except ModelNotFound:
        return 0


def populate(
    database: Database, *, upto: int, others: int, metrics: int, actor: str = "bench"
) -> float:
    """Register versions until `listed` has `others` and `big` has `upto` (version n gets
    `version_contents(n - 1)`, as on MLflow's side); return the seconds taken."""
    began = time.perf_counter()
    for model, wanted in ((OTHER, others), (MODEL, upto)):
        start = version_count(Registry(database, actor=actor), model)
        for first in range(start, wanted, BATCH):
            with database.write() as connection:
                registry = Registry(OneTransaction(database, connection), actor=actor)  # type: ignore[arg-type]
                for index in range(first, min(wanted, first + BATCH)):
                    contents = version_contents(index, metrics)
                    registry.create_version(
                        model,
                        params=contents["params"],
                        metrics=contents["metrics"],
                        tags=contents["tags"],
                    )
    return time.perf_counter() - began
