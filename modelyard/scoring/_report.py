"""`ScoreReport`: what a batch scoring job wrote, how fast, and the batch's drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.monitoring import DriftReport


@dataclass(frozen=True)
class ScoreReport:
    """The outcome of `Yard.score`: the part files written under `output` (one per input
    partition), rows scored, wall-clock `seconds`, and the drift of the batch's inputs
    (`drift`) and of the model's outputs for them (`output_drift`) against the reference
    logged with the version (None when it has none). `cpu`: the workers' CPU seconds per
    stage (model load, read, check, predict, profile, write), summed over the partitions."""

    ref: str
    output: Path
    parts: tuple[Path, ...]
    rows: int
    seconds: float
    workers: int
    drift: DriftReport | None = None
    output_drift: DriftReport | None = None
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Rows scored per second of wall-clock time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "ref": self.ref,
            "output": str(self.output),
            "parts": [str(part) for part in self.parts],
            "rows": self.rows,
            "seconds": self.seconds,
            "rows_per_second": self.rows_per_second,
            "workers": self.workers,
            "cpu_seconds": dict(self.cpu),
            "drift": None if self.drift is None else self.drift.model_dump(mode="json"),
            "output_drift": (
                None if self.output_drift is None else self.output_drift.model_dump(mode="json")
            ),
        }

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [
            f"scored {self.rows:,} rows with {self.ref} on {self.workers} workers in "
            f"{self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)",
            f"wrote {len(self.parts)} part file{'s' if len(self.parts) != 1 else ''} to "
            f"{self.output}",
        ]
        if self.cpu:
            stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in self.cpu.items())
            lines.append(f"worker CPU: {sum(self.cpu.values()):.1f} s ({stages})")
        for label, report in (("inputs", self.drift), ("outputs", self.output_drift)):
            if report is None:
                continue
            lines.append(f"drift of the {label}: {report.verdict()}")
            lines.extend(
                f"  {column.column}: {column.test} {column.score:.3g}"
                + (" DRIFTED" if column.drifted else "")
                for column in report.columns
            )
        if self.drift is None:
            lines.append(
                "drift: the version has no reference profile (log it with reference_data=)"
            )
        return "\n".join(lines)
