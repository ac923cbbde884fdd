"""The report of one optimization step: parent and child figures, ratios and the verdict."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from modelyard.optimize._measure import Measurement

REPORT_FILE = "optimize/report.json"


class OptimizeReport(BaseModel):
    """What a step (`quantize`, `prune`, `convert`, …) did to its parent, measured on the
    caller's evaluation set: stored with the new version as `optimize/report.json`."""

    model_config = ConfigDict(frozen=True)

    step: str
    settings: dict[str, Any]
    parent: str
    metric: str
    higher_is_better: bool
    tolerance: float
    rows: int
    before: Measurement
    after: Measurement
    forced: bool = False

    @property
    def size_ratio(self) -> float:
        """How many times smaller the child is (2.0: half the bytes)."""
        return self.before.size_bytes / max(self.after.size_bytes, 1)

    @property
    def speedup_batch1(self) -> float:
        """How many times faster one row is answered (p50)."""
        return self.before.p50_batch1_ms / max(self.after.p50_batch1_ms, 1e-9)

    @property
    def speedup_batch64(self) -> float:
        """How many times faster 64 rows are answered (p50)."""
        return self.before.p50_batch64_ms / max(self.after.p50_batch64_ms, 1e-9)

    @property
    def metric_change(self) -> float:
        """Relative change of the metric, negative when it got worse whichever way is better."""
        before, after = self.before.metric, self.after.metric
        change = (after - before) / abs(before) if before else after - before
        return change if self.higher_is_better else -change

    @property
    def accepted(self) -> bool:
        """Whether the metric fell by no more than the tolerance."""
        return self.metric_change >= -self.tolerance - 1e-12

    def metrics(self) -> dict[str, float]:
        """The figures recorded as the new version's metrics."""
        return {
            self.metric: self.after.metric,
            "optimize.size_bytes": float(self.after.size_bytes),
            "optimize.size_ratio": self.size_ratio,
            "optimize.speedup_batch1": self.speedup_batch1,
            "optimize.speedup_batch64": self.speedup_batch64,
            "optimize.p50_batch1_ms": self.after.p50_batch1_ms,
            "optimize.p50_batch64_ms": self.after.p50_batch64_ms,
            "optimize.metric_change": self.metric_change,
        }

    def table(self) -> str:
        """The report as a Markdown table (what the CLI prints)."""
        b, a = self.before, self.after
        ms = "{:.3f} ms".format
        rows = [
            ("size on disk", _bytes(b.size_bytes), _bytes(a.size_bytes),
             f"{self.size_ratio:.2f}x smaller"),
            ("p50 batch 1", ms(b.p50_batch1_ms), ms(a.p50_batch1_ms),
             f"{self.speedup_batch1:.2f}x faster"),
            ("p50 batch 64", ms(b.p50_batch64_ms), ms(a.p50_batch64_ms),
             f"{self.speedup_batch64:.2f}x faster"),
            (self.metric, f"{b.metric:.4f}", f"{a.metric:.4f}", f"{self.metric_change:+.2%}"),
        ]  # fmt: skip
        verdict = "accepted" if self.accepted else ("forced" if self.forced else "refused")
        lines = [
            f"{self.step} of {self.parent} ({_settings(self.settings)}), {self.rows} rows, "
            f"tolerance {self.tolerance:.2%}: {verdict}",
            "",
            f"| | {self.parent} | {self.step} | change |",
            "|---|---:|---:|---:|",
            *(f"| {name} | {x} | {y} | {z} |" for name, x, y, z in rows),
        ]
        return "\n".join(lines)


def _bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024**2:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024**2:.1f} MiB"


def _settings(settings: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items()) or "defaults"
