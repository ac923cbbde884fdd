"""Scoring one partition: stream its batches through the model, append the outputs as
columns, write one Parquet part file atomically (a temporary name, then a rename) and profile
the inputs and outputs against the version's reference for the batch's drift report. The
worker thread's CPU seconds are counted per stage (`STAGES`), so a slow job shows where its
time went."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import InvalidDataFile
from modelyard.monitoring import Profile, flat_columns, profile
from modelyard.scoring._inputs import Partition, read_batches
from modelyard.scoring._model import Array, ScoringModel

#: The stages a partition's CPU time is counted in: reading and decoding the file, checking
#: the columns against the signature, the model's call, the drift profiles, writing the part.
STAGES = ("read", "check", "predict", "profile", "write")


@dataclass(frozen=True)
class PartitionTask:
    """What a worker is asked to do: score `partition` into the folder `output`. The reference
    profiles travel as bytes (`Profile.to_bytes`), or None when the version has none."""

    partition: Partition
    output: str
    batch_rows: int
    reference_inputs: bytes | None = None
    reference_outputs: bytes | None = None


@dataclass(frozen=True)
class PartitionResult:
    """What a worker did: rows scored into `part`, and the profiles (as bytes) of what it saw;
    `cpu`: the worker thread's CPU seconds per stage (`STAGES`, and `load` for the partition
    that loaded the model)."""

    index: int
    part: str
    rows: int
    seconds: float
    inputs: bytes | None
    outputs: bytes | None
    cpu: dict[str, float] = field(default_factory=dict)


def part_name(index: int) -> str:
    """The output file of partition `index`."""
    return f"part-{index:05d}.parquet"


def score_partition(model: ScoringModel, task: PartitionTask) -> PartitionResult:
    """Score one partition with `model` (see the module docstring)."""
    started = time.perf_counter()
    path = task.partition.path
    target = Path(task.output) / part_name(task.partition.index)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    clock = _StageClock()
    profiles = _Profiles(task)
    rows = 0
    try:
        with _PartWriter(temporary) as writer:
            types = model.column_types() if task.partition.format == "csv" else None
            batches = read_batches(task.partition, batch_rows=task.batch_rows, column_types=types)
            for batch in clock.timed(batches, "read"):
                if batch.num_rows == 0:
                    continue
                with clock("read"):
                    columns = _numpy_columns(batch)
                with clock("check"):
                    inputs = model.inputs(columns, path=path)
                with clock("predict"):
                    outputs = flat_columns(model.predict(inputs, rows=batch.num_rows))
                with clock("write"):
                    writer.write(_appended(batch, outputs, path))
                with clock("profile"):
                    profiles.add(inputs, outputs)
                rows += batch.num_rows
            clock.start("write")  # closing the writer flushes the last row group
        clock.stop()
        if rows == 0:
            raise InvalidDataFile(path, "the file holds no rows")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    with clock("profile"):
        inputs_bytes, outputs_bytes = profiles.to_bytes()
    return PartitionResult(task.partition.index, str(target), rows,
                           time.perf_counter() - started, inputs_bytes, outputs_bytes,
                           clock.seconds)  # fmt: skip


class _StageClock:
    """The calling thread's CPU seconds, summed per stage."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._stage: str | None = None
        self._began = 0.0

    def start(self, stage: str) -> None:
        self.stop()
        self._stage, self._began = stage, time.thread_time()

    def stop(self) -> None:
        if self._stage is not None:
            self.seconds[self._stage] += time.thread_time() - self._began
            self._stage = None

    def __call__(self, stage: str) -> _StageClock:
        self.start(stage)
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def timed(self, items: Iterator[Any], stage: str) -> Iterator[Any]:
        """`items`, the time spent producing each counted in `stage`."""
        while True:
            self.start(stage)
            try:
                item = next(items)
            except StopIteration:
                self.stop()
                return
            finally:
                self.stop()
            yield item


def _numpy_columns(batch: Any) -> dict[str, Array]:
    return {
        str(name): np.asarray(batch.column(i).to_numpy(zero_copy_only=False))
        for i, name in enumerate(batch.schema.names)
    }


def _appended(batch: Any, outputs: dict[str, Array], path: str) -> Any:
    pyarrow = require("pyarrow", extra="pandas")
    taken = set(batch.schema.names)
    for name in outputs:
        if name in taken:
            raise InvalidDataFile(
                path, f"column {name!r} is also an output of the model; rename the column"
            )
    arrays = [*batch.columns, *(pyarrow.array(value) for value in outputs.values())]
    return pyarrow.RecordBatch.from_arrays(arrays, names=[*batch.schema.names, *outputs])


class _PartWriter:
    """A Parquet writer opened on the first batch (its schema is the file's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Any = None

    def write(self, batch: Any) -> None:
        parquet = require("pyarrow.parquet", extra="pandas")
        if self._writer is None:
            self._writer = parquet.ParquetWriter(self.path, batch.schema)
        elif batch.schema != self._writer.schema:  # a column inferred otherwise in a later batch
            batch = batch.cast(self._writer.schema)
        self._writer.write_batch(batch)

    def __enter__(self) -> _PartWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._writer is not None:
            self._writer.close()


class _Profiles:
    """Profiles of the inputs and outputs seen, merged batch by batch, of the reference's
    columns only (with its histogram edges, so that they merge across partitions)."""

    def __init__(self, task: PartitionTask) -> None:
        self.reference = [
            None if data is None else Profile.from_bytes(data)
            for data in (task.reference_inputs, task.reference_outputs)
        ]
        self.seen: list[Profile | None] = [None, None]

    def add(self, inputs: dict[str, Array], outputs: dict[str, Array]) -> None:
        for side, arrays in enumerate((flat_columns(inputs), outputs)):
            reference = self.reference[side]
            if reference is None:
                continue
            known = {name: arrays[name] for name in reference.columns if name in arrays}
            if not known:
                continue
            summary = profile(known, reference=reference)
            before = self.seen[side]
            self.seen[side] = summary if before is None else before.merge(summary)

    def to_bytes(self) -> tuple[bytes | None, bytes | None]:
        inputs, outputs = self.seen
        return (
            None if inputs is None else inputs.to_bytes(),
            None if outputs is None else outputs.to_bytes(),
        )
