"""Crafted input files, scored in this process (no Dask): each gives `InvalidDataFile` naming
the file and the problem, and leaves no part file behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard import Yard
from modelyard.errors import InferenceError, InputRejected, InvalidDataFile
from modelyard.scoring import (
    PartitionTask,
    ScoringModel,
    input_files,
    plan_partitions,
    score_partition,
)
from tests.scoring.conftest import frame


@pytest.fixture
def model(yard: Yard, version: str) -> ScoringModel:
    return ScoringModel(yard.load_model(version))


def score(model: ScoringModel, path: Path, out: Path) -> None:
    out.mkdir(exist_ok=True)
    for partition in plan_partitions([path], partition_rows=1000):
        score_partition(model, PartitionTask(partition, str(out), 100))


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("junk.parquet", b"PAR1 this is not parquet", "not a Parquet file"),
        ("nothing.parquet", b"", "not a Parquet file"),
        ("empty.csv", b"", "Empty CSV file"),
        ("header.csv", b"id,a,b\n", "the file holds no rows"),
        ("words.csv", b"id,a,b\n1,0.5,1.0\n2,high,2.0\n", "conversion error to double"),
        ("short.csv", b"id,a\n1,0.5\n", "missing column 'b'"),
    ],
)
def test_a_crafted_file_is_refused_by_name(
    model: ScoringModel, tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InvalidDataFile, match=problem) as caught:
        score(model, tmp_path / name, tmp_path / "out")
    assert caught.value.path == str(tmp_path / name)
    assert str(caught.value).startswith(f"{tmp_path / name}: ")
    assert not list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else True


def test_parquet_of_wrong_types_or_no_rows(model: ScoringModel, tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": ["x", "y"], "b": [1.0, 2.0]}), tmp_path / "text.parquet")
    with pytest.raises(InvalidDataFile, match=r"text\.parquet: input 'a' must be FP64"):
        score(model, tmp_path / "text.parquet", tmp_path / "out")
    frame(0).to_parquet(tmp_path / "none.parquet")
    with pytest.raises(InvalidDataFile, match=r"none\.parquet: the file holds no rows"):
        score(model, tmp_path / "none.parquet", tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_a_column_named_like_an_output_is_refused(model: ScoringModel, tmp_path: Path) -> None:
    frame(5).assign(**{"output-0": 1.0}).to_parquet(tmp_path / "clash.parquet")
    with pytest.raises(InvalidDataFile, match="column 'output-0' is also an output"):
        score(model, tmp_path / "clash.parquet", tmp_path / "out")


def test_integers_in_a_float_column_are_taken(model: ScoringModel, tmp_path: Path) -> None:
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_parquet(tmp_path / "ints.parquet")
    score(model, tmp_path / "ints.parquet", tmp_path / "out")
    assert pd.read_parquet(tmp_path / "out/part-00000.parquet")["output-0"].size == 2


def test_partitions_follow_row_groups_and_files(tmp_path: Path) -> None:
    frame(2500).to_parquet(tmp_path / "big.parquet", row_group_size=500)
    frame(10).to_csv(tmp_path / "small.csv", index=False)
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".hidden.parquet").write_text("")
    files = input_files(tmp_path)
    assert [f.name for f in files] == ["big.parquet", "small.csv"]
    partitions = plan_partitions(files, partition_rows=1000)
    assert [(p.index, p.format, p.row_groups, p.rows) for p in partitions] == [
        (0, "parquet", (0, 1), 1000),
        (1, "parquet", (2, 3), 1000),
        (2, "parquet", (4,), 500),
        (3, "csv", None, None),
    ]
    assert [f.name for f in input_files(tmp_path / "*.csv")] == ["small.csv"]
    (tmp_path / "void").mkdir()
    with pytest.raises(InvalidDataFile, match="holds no files"):
        input_files(tmp_path / "void")


def stored(yard: Yard, model: object, example: np.ndarray) -> ScoringModel:  # type: ignore[type-arg]
    ref = yard.log_model(model, name="py", input_example=example).ref
    return ScoringModel(yard.load_model(ref, trust=True))


def test_a_model_of_one_2d_input_takes_the_columns_side_by_side(yard: Yard, tmp_path: Path) -> None:
    from tests.flavors.pyfunc_models import Picky, Shapes

    picky = stored(yard, Picky(), np.ones((2, 3)))
    pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0], "z": [5.0, 6.0]}).to_csv(
        tmp_path / "ok.csv", index=False
    )
    score(picky, tmp_path / "ok.csv", tmp_path / "out")
    assert pd.read_parquet(tmp_path / "out/part-00000.parquet")["output-0"].tolist() == [9, 12]
    pd.DataFrame({"x": [1.0, -2.0], "y": [3.0, 4.0], "z": [5.0, 6.0]}).to_parquet(
        tmp_path / "negative.parquet"
    )
    with pytest.raises(InputRejected, match="negative values are not supported"):
        score(picky, tmp_path / "negative.parquet", tmp_path / "out2")
    pd.DataFrame({"x": [1e7], "y": [3.0], "z": [5.0]}).to_parquet(tmp_path / "huge.parquet")
    with pytest.raises(InferenceError, match="the accumulator overflowed"):
        score(picky, tmp_path / "huge.parquet", tmp_path / "out3")
    with pytest.raises(InvalidDataFile, match="missing column 'input-0'"):
        pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "narrow.parquet")
        score(picky, tmp_path / "narrow.parquet", tmp_path / "out4")
    named = stored(yard, Shapes(), np.ones((2, 3)))  # answers a dict: its keys name columns
    score(named, tmp_path / "ok.csv", tmp_path / "out6")
    scored = pd.read_parquet(tmp_path / "out6/part-00000.parquet")
    assert scored.columns.tolist() == ["x", "y", "z", "total", "top"]
    assert scored["top"].tolist() == [5.0, 6.0]
