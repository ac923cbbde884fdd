"""What to score: input files (a file, a folder of files or a glob), cut into partitions, each
read as a stream of record batches with pyarrow, never a whole file at once.

A Parquet file is cut at row-group boundaries into partitions of about `partition_rows` rows,
so one large file still spreads over the workers; a CSV file is one partition (a quoted field
may hold a newline, so a CSV file cannot be split by bytes safely).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelyard._imports import require
from modelyard.errors import InvalidDataFile

Format = Literal["parquet", "csv"]

#: Suffixes read as CSV; any other file is read as Parquet.
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
#: Bytes pyarrow's CSV reader parses at a time.
CSV_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Partition:
    """One unit of work: a file, or a run of a Parquet file's row groups (`row_groups`)."""

    index: int
    path: str
    format: Format
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None  # known up front for Parquet


def input_files(source: str | Path) -> list[Path]:
    """The files `source` names, sorted: the file itself, a folder's files (hidden files and
    names starting with `_` skipped, as Spark and Dask write them), or a glob's matches."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name[0] not in "._")
        if not files:
            raise InvalidDataFile(str(path), "the folder holds no files to score")
        return files
    matches = sorted(Path(p) for p in glob.glob(str(source), recursive=True) if Path(p).is_file())
    if not matches:
        raise InvalidDataFile(str(source), "no such file, folder or matching files")
    return matches


def format_of(path: Path) -> Format:
    """`csv` for a .csv file (compressed or not), else `parquet`."""
    return "csv" if path.name.lower().endswith(CSV_SUFFIXES) else "parquet"


def plan_partitions(files: list[Path], *, partition_rows: int) -> list[Partition]:
    """The partitions of `files`, numbered in order (each becomes one output part file)."""
    partitions: list[Partition] = []
    for path in files:
        if format_of(path) == "csv":
            partitions.append(Partition(len(partitions), str(path), "csv"))
            continue
        for groups, rows in _row_group_runs(path, partition_rows):
            partitions.append(Partition(len(partitions), str(path), "parquet", groups, rows))
    return partitions


def _row_group_runs(path: Path, partition_rows: int) -> Iterator[tuple[tuple[int, ...], int]]:
    metadata = _parquet_file(str(path)).metadata
    if metadata.num_rows == 0:
        raise InvalidDataFile(str(path), "the file holds no rows")
    run: list[int] = []
    rows = 0
    for group in range(metadata.num_row_groups):
        count = metadata.row_group(group).num_rows
        if run and rows + count > partition_rows:
            yield tuple(run), rows
            run, rows = [], 0
        run.append(group)
        rows += count
    if run:
        yield tuple(run), rows


def read_batches(
    partition: Partition, *, batch_rows: int, column_types: Mapping[str, Any] | None = None
) -> Iterator[Any]:
    """The partition's rows as pyarrow record batches of at most `batch_rows` rows; a file that
    is not what it claims to be raises `InvalidDataFile` naming it. `column_types` (name to
    pyarrow type) fixes how CSV columns are parsed."""
    pyarrow = require("pyarrow", extra="pandas")
    try:
        if partition.format == "csv":
            yield from _rechunked(_csv_batches(partition.path, column_types), batch_rows)
        else:
            parquet = _parquet_file(partition.path)
            yield from parquet.iter_batches(batch_size=batch_rows, row_groups=partition.row_groups)
    except (pyarrow.ArrowException, OSError, ValueError) as error:
        raise InvalidDataFile(partition.path, _arrow_message(error)) from None


def _csv_batches(path: str, column_types: Mapping[str, Any] | None) -> Iterator[Any]:
    csv = require("pyarrow.csv", extra="pandas")
    reader = csv.open_csv(
        path,
        read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=csv.ConvertOptions(column_types=dict(column_types or {})),
    )
    yield from reader


def _rechunked(batches: Iterator[Any], rows: int) -> Iterator[Any]:
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _parquet_file(path: str) -> Any:
    pyarrow = require("pyarrow", extra="pandas")
    parquet = require("pyarrow.parquet", extra="pandas")
    try:
        return parquet.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as error:
        raise InvalidDataFile(path, f"not a Parquet file ({_arrow_message(error)})") from None


def _arrow_message(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
