"""`Profile`: a mergeable per-column summary of a table, and `profile` to build one."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import MappingProxyType

import numpy as np

from modelyard.errors import InvalidInput
from modelyard.monitoring import _serialization
from modelyard.monitoring._columns import (
    DEFAULT_CATEGORY_CAP,
    CategoricalColumn,
    Categories,
    Column,
    Histogram,
    NumericColumn,
    summarise_categorical,
    summarise_numeric,
)
from modelyard.monitoring._reservoir import DEFAULT_CAPACITY, Draws
from modelyard.monitoring._tables import (
    NumericChunk,
    TableColumn,
    table_columns,
)

#: Rows summarised at a time: big enough for NumPy to amortise calls, small enough for the cache.
CHUNK_ROWS = 131_072
#: Equal-width bins of the histogram of each numeric column.
HISTOGRAM_BINS = 32


class Profile:
    """A summary of each column of a table that can be merged, compared and stored.

    Build one with `profile(data)`; `a.merge(b)` summarises both tables as if they were one.

        reference = profile(training_frame)
        window = profile(todays_inputs, reference=reference)  # histograms share edges
        detect_drift(reference, window).drifted
    """

    __slots__ = ("_columns",)

    def __init__(self, columns: Mapping[str, Column]) -> None:
        self._columns: Mapping[str, Column] = MappingProxyType(dict(columns))

    @property
    def columns(self) -> Mapping[str, Column]:
        """Each column's summary, by name, in the table's order."""
        return self._columns

    @property
    def rows(self) -> int:
        """Rows summarised."""
        return next(iter(self._columns.values())).count

    def merge(self, other: Profile, *, seed: int | None = None) -> Profile:
        """The profile of both tables, which must have the same columns of the same kinds."""
        if list(self._columns) != list(other.columns):
            raise InvalidInput(
                f"cannot merge profiles of different columns: {list(self._columns)} and "
                f"{list(other.columns)}"
            )
        rng = np.random.default_rng(seed)
        return Profile(
            {
                name: _merge(name, mine, other.columns[name], rng)
                for name, mine in self._columns.items()
            }
        )

    def to_bytes(self) -> bytes:
        """A compact JSON encoding (arrays as base64), read back by `Profile.from_bytes`."""
        return _serialization.dump(self._columns)

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """The profile that `to_bytes` wrote."""
        return cls(_serialization.load(data))

    def __repr__(self) -> str:
        return f"<Profile {self.rows:,} rows: {', '.join(self._columns)}>"


def profile(
    data: object,
    *,
    reference: Profile | None = None,
    sample_size: int = DEFAULT_CAPACITY,
    category_cap: int = DEFAULT_CATEGORY_CAP,
    seed: int | None = None,
) -> Profile:
    """Summarise `data`: a pandas or Polars DataFrame, a pyarrow Table or RecordBatch, a dict
    of 1-D arrays, or a 2-D array (`input-0`, …). Booleans and text are categorical; datetimes
    are numeric, in seconds since the epoch (NaT is null).

    Pass the `reference` profile when profiling a window, so that histograms share its edges
    and each column keeps the reference's kind: a string among the numbers of a numeric column
    is counted in `mismatches` (not a null) and left out of the statistics.

        window = profile(frame, reference=reference)
    """
    seeds = np.random.SeedSequence(seed)
    kinds = None if reference is None else {n: c.kind for n, c in reference.columns.items()}
    table = table_columns(data, kinds)
    draws = Draws(seeds.entropy, capacity=sample_size)  # type: ignore[arg-type]

    def summarise(column: TableColumn, child: np.random.SeedSequence) -> Column:
        rng = np.random.default_rng(child)
        if column.kind == "numeric":
            return _numeric(column, _edges(column, reference), draws, sample_size, rng)
        return _categorical(column, draws, sample_size, category_cap, rng)

    summaries = _summarise_all(summarise, table, seeds.spawn(len(table)))
    return Profile({column.name: summary for column, summary in zip(table, summaries, strict=True)})


def _summarise_all(
    summarise: Callable[[TableColumn, np.random.SeedSequence], Column],
    table: list[TableColumn],
    children: list[np.random.SeedSequence],
) -> list[Column]:
    """Each column's summary, in the table's order. On a big table with both kinds, the text
    columns (hashed by pandas under the GIL) run on a second thread while the numeric ones
    (NumPy, which releases the GIL on big arrays) run here; each column has its own seed, so
    the result does not depend on the threads."""
    pairs = list(zip(table, children, strict=True))
    text = [pair for pair in pairs if pair[0].kind == "categorical"]
    if not text or len(text) == len(pairs) or len(table[0].values) < _THREAD_ROWS:
        return [summarise(*pair) for pair in pairs]
    pending = _helper().submit(lambda: [summarise(*pair) for pair in text])
    numeric = [summarise(*pair) for pair in pairs if pair[0].kind != "categorical"]
    categorical = iter(pending.result())
    by_kind = iter(numeric)
    return [next(categorical if column.kind == "categorical" else by_kind) for column in table]


def _helper() -> ThreadPoolExecutor:
    """The one helper thread, kept for the process: a thread per call would get a fresh malloc
    arena each time, and the memory it leaves behind would grow with the calls. A child process
    forked after it started makes its own (the parent's thread does not exist there)."""
    global _HELPER
    if _HELPER is None or _HELPER[0] != os.getpid():
        _HELPER = os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="modelyard-profile")
    return _HELPER[1]


_HELPER: tuple[int, ThreadPoolExecutor] | None = None
#: Rows from which a second thread pays for itself.
_THREAD_ROWS = 16_384


def _numeric(
    column: TableColumn,
    histogram: Histogram,
    draws: Draws,
    sample_size: int,
    rng: np.random.Generator,
) -> NumericColumn:
    def summarise(index: int, chunk: NumericChunk) -> NumericColumn:
        values, mismatches = chunk
        draw = partial(draws.positions, index)
        return summarise_numeric(
            values,
            histogram=histogram,
            capacity=sample_size,
            rng=rng,
            mismatches=mismatches,
            draw=draw,
        )

    chunks = enumerate(column.chunks(CHUNK_ROWS))
    summary = summarise(*next(chunks))  # table_columns refuses tables without rows
    for index, chunk in chunks:
        summary = summary.merge(summarise(index, chunk), column=column.name, rng=rng)
    return summary


def _categorical(
    column: TableColumn, draws: Draws, sample_size: int, cap: int, rng: np.random.Generator
) -> CategoricalColumn:
    def summarise(index: int, chunk: Categories) -> CategoricalColumn:
        draw = partial(draws.positions, index)
        return summarise_categorical(chunk, capacity=sample_size, cap=cap, rng=rng, draw=draw)

    chunks = enumerate(column.chunks(CHUNK_ROWS))
    summary = summarise(*next(chunks))
    for index, chunk in chunks:
        summary = summary.merge(summarise(index, chunk), column=column.name, rng=rng)
    return summary


def _edges(column: TableColumn, reference: Profile | None) -> Histogram:
    empty = np.zeros(HISTOGRAM_BINS + 2, dtype=np.int64)
    if reference is not None and column.name in reference.columns:
        known = reference.columns[column.name]
        if isinstance(known, NumericColumn):
            return Histogram(known.histogram.low, known.histogram.high, empty)
    # fmin/fmax skip NaN without nanmin's warning on an all-null column
    low, high = np.inf, -np.inf
    for values, _ in column.chunks(CHUNK_ROWS):
        if values.size:
            low = min(low, float(np.fmin.reduce(values)))
            high = max(high, float(np.fmax.reduce(values)))
    if not (np.isfinite(low) and np.isfinite(high)):
        low, high = 0.0, 1.0
    return Histogram(low, high if high > low else low + 1.0, empty)


def _merge(name: str, mine: Column, theirs: Column, rng: np.random.Generator) -> Column:
    if isinstance(mine, NumericColumn) and isinstance(theirs, NumericColumn):
        return mine.merge(theirs, column=name, rng=rng)
    if isinstance(mine, CategoricalColumn) and isinstance(theirs, CategoricalColumn):
        return mine.merge(theirs, column=name, rng=rng)
    raise InvalidInput(
        f"column {name!r} is {mine.kind} in one profile and {theirs.kind} in the other"
    )
