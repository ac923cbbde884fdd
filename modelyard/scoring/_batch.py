"""`score_files`: a whole batch scoring job, from input files to part files and a report."""

from __future__ import annotations

import time
from pathlib import Path

from modelyard.errors import ConfigurationError, OutputExists
from modelyard.monitoring import DriftReport, Profile, detect_drift
from modelyard.scoring._cluster import dask_client, run_partitions
from modelyard.scoring._inputs import input_files, plan_partitions
from modelyard.scoring._model import ModelSpec
from modelyard.scoring._partition import PartitionTask
from modelyard.scoring._report import ScoreReport

#: Rows handed to the model at a time.
BATCH_ROWS = 65_536
#: Rows of a Parquet file per partition (and part file): whole row groups, about this many.
PARTITION_ROWS = 250_000


def score_files(
    spec: ModelSpec,
    source: str | Path,
    output: str | Path,
    *,
    reference: tuple[Profile, Profile] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    batch_rows: int = BATCH_ROWS,
    partition_rows: int = PARTITION_ROWS,
    overwrite: bool = False,
) -> ScoreReport:
    """Score the Parquet or CSV files `source` names with the version `spec` points at, into
    Parquet part files under the folder `output`, on Dask (see `modelyard.scoring`)."""
    if batch_rows < 1 or partition_rows < 1:
        raise ConfigurationError("batch_rows and partition_rows must be at least 1")
    started = time.perf_counter()
    partitions = plan_partitions(input_files(source), partition_rows=partition_rows)
    folder = prepare_output(Path(output), overwrite=overwrite)
    ref_inputs, ref_outputs = (None, None) if reference is None else reference
    tasks = [
        PartitionTask(
            partition, str(folder), batch_rows,
            None if ref_inputs is None else ref_inputs.to_bytes(),
            None if ref_outputs is None else ref_outputs.to_bytes(),
        )
        for partition in partitions
    ]  # fmt: skip
    with dask_client(scheduler, workers=workers) as client:
        count = len(client.scheduler_info()["workers"])
        results = sorted(run_partitions(client, spec, tasks), key=lambda r: r.index)
    return ScoreReport(
        ref=spec.ref,
        output=folder,
        parts=tuple(Path(result.part) for result in results),
        rows=sum(result.rows for result in results),
        seconds=time.perf_counter() - started,
        workers=count,
        drift=_drift(ref_inputs, [result.inputs for result in results]),
        output_drift=_drift(ref_outputs, [result.outputs for result in results]),
        cpu=_summed([result.cpu for result in results]),
    )


def prepare_output(folder: Path, *, overwrite: bool) -> Path:
    """`folder`, created when absent; one that holds files is refused (`OutputExists`) unless
    `overwrite`, which removes the part files of an earlier job (and only those)."""
    if folder.exists() and not folder.is_dir():
        raise OutputExists(f"the output {folder} is a file; name a folder for the part files")
    folder.mkdir(parents=True, exist_ok=True)
    present = sorted(folder.iterdir())
    if present and not overwrite:
        raise OutputExists(
            f"the output folder {folder} already holds {len(present)} entries; pass "
            "--overwrite (overwrite=True) to replace the part files of an earlier job"
        )
    if overwrite:
        others = [p for p in present if not (p.name.startswith("part-") and p.suffix == ".parquet")]
        if others:
            raise OutputExists(
                f"the output folder {folder} holds {others[0].name}, which is not a part file; "
                "overwrite replaces only part files, so name an empty or new folder"
            )
        for part in present:
            part.unlink()
    return folder


def _summed(parts: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for stage, seconds in part.items():
            total[stage] = total.get(stage, 0.0) + seconds
    return total


def _drift(reference: Profile | None, parts: list[bytes | None]) -> DriftReport | None:
    profiles = [Profile.from_bytes(data) for data in parts if data is not None]
    if reference is None or not profiles:
        return None
    merged = profiles[0]
    for other in profiles[1:]:
        merged = merged.merge(other)
    return detect_drift(reference, merged)
