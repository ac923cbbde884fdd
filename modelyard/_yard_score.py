"""`Yard.score`: batch scoring of Parquet or CSV files on Dask (see `modelyard.scoring`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    from modelyard.registry import ModelVersion
    from modelyard.scoring import ScoreReport
    from modelyard.settings import Settings


class _Host(Protocol):
    settings: Settings
    url: str | None

    def get_version(self, ref: str) -> ModelVersion: ...

    def model_folder(self, version: ModelVersion) -> Path: ...

    def check_signature(self, version: ModelVersion) -> None: ...


class Scoring:
    """`Yard.score`, mixed into `Yard` (which provides settings, versions and their folders)."""

    def score(
        self: _Host,
        ref: str,
        input: str | Path,
        output: str | Path,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        batch_rows: int | None = None,
        partition_rows: int | None = None,
        overwrite: bool = False,
        trust: bool = False,
    ) -> ScoreReport:
        """Score the Parquet or CSV files `input` names (a file, a folder or a glob) with
        version `ref` into Parquet part files under the folder `output` (one per input
        partition; `overwrite` replaces an earlier job's), and report the batch's drift
        against the version's reference.

        Runs on the Dask scheduler at `scheduler` (`tcp://host:port`), else on a LocalCluster
        of `workers` processes (default: one per CPU). Each worker loads the model once, from
        the store these settings name (the settings travel to the workers, credentials
        included), with the same `trust` as serving. A client of a remote server
        (`Yard(url=…)`) fetches the version into its cache and scores on a LocalCluster on this
        machine, whose workers read that folder; a scheduler elsewhere could not, so that
        combination raises `ConfigurationError`.

        >>> report = yard.score("fraud@production", "data/*.parquet", "scored/")
        >>> print(report.summary())
        """
        from modelyard.monitoring import read_reference
        from modelyard.scoring import BATCH_ROWS, PARTITION_ROWS, ModelSpec, score_files

        version = self.get_version(ref)
        if version.manifest_digest is None:
            raise ConfigurationError(f"{version.ref} has no stored files to score with")
        if version.signature is None:
            raise ConfigurationError(
                f"{version.ref} has no signature; scoring matches columns to a signature "
                "(log the model with input_example=)"
            )
        if self.url and scheduler:
            raise ConfigurationError(
                "scoring with a remote registry (MODELYARD_URL) runs on a LocalCluster only: "
                "the workers read the version from this machine's cache; to use a scheduler, "
                "give the workers the store itself (MODELYARD_STORE_URL and the database)"
            )
        self.check_signature(version)  # settings.require_signature, as serving checks
        folder = self.model_folder(version)
        spec = ModelSpec(
            ref=version.ref,
            digest=version.manifest_digest,
            settings=self.settings,
            trust=trust,
            folder=str(folder) if self.url else None,
        )
        return score_files(
            spec,
            input,
            output,
            reference=read_reference(folder),
            scheduler=scheduler,
            workers=workers,
            batch_rows=batch_rows or BATCH_ROWS,
            partition_rows=partition_rows or PARTITION_ROWS,
            overwrite=overwrite,
        )
