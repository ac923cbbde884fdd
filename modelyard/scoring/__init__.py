"""Batch scoring: Parquet or CSV files through a registered version on Dask, into Parquet.

>>> report = yard.score("fraud@production", "data/2026-12/*.parquet", "scored/")
>>> report.rows_per_second, report.drift.drifted

Partitions (a CSV file, or a run of a Parquet file's row groups) are streamed in record
batches with pyarrow and scored on Dask workers (an existing scheduler, or a LocalCluster of
one-thread processes); each worker loads the model once, from the store its settings name.
Inputs are checked against the signature as serving checks requests; the model's outputs are
appended as columns named as serving names them; each partition becomes one part file, written
under a temporary name and renamed. The inputs' and outputs' profiles merge across partitions
into the batch's drift report against the version's reference.
"""

from __future__ import annotations

from modelyard.scoring._batch import BATCH_ROWS, PARTITION_ROWS, prepare_output, score_files
from modelyard.scoring._cluster import local_cluster
from modelyard.scoring._inputs import Partition, input_files, plan_partitions, read_batches
from modelyard.scoring._model import ModelSpec, ScoringModel
from modelyard.scoring._partition import (
    STAGES,
    PartitionResult,
    PartitionTask,
    part_name,
    score_partition,
)
from modelyard.scoring._report import ScoreReport

__all__ = [
    "BATCH_ROWS",
    "ModelSpec",
    "PARTITION_ROWS",
    "Partition",
    "PartitionResult",
    "PartitionTask",
    "STAGES",
    "ScoreReport",
    "ScoringModel",
    "input_files",
    "local_cluster",
    "part_name",
    "plan_partitions",
    "prepare_output",
    "read_batches",
    "score_files",
    "score_partition",
]
