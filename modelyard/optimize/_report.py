"""The report of one optimization step: parent and child figures, ratios and the verdict.

The verdict covers the three things a step trades: the metric may fall by at most `tolerance`,
the child may answer at most `max_slowdown` times slower than its parent (at batch 1 and at
batch 64 both: a step that is slower at one size but faster at the other is a trade-off, not a
regression), and, when set, be at most `max_size_ratio` times its parent's size."""

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
    max_slowdown: float | None = None  # None: latency is reported, not judged
    max_size_ratio: float | None = None  # None: size is reported, not judged

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
    def slowdown(self) -> float:
        """How many times slower the child answers, at the batch size where it lost least
        (below 1: faster at some batch size)."""
        return 1 / max(self.speedup_batch1, self.speedup_batch64, 1e-12)

    def problems(self) -> list[str]:
        """Why the result is refused: each limit it is past, as a phrase; empty if none."""
        found = []
        if self.metric_change < -self.tolerance - 1e-12:
            found.append(
                f"{self.metric} changed by {self.metric_change:+.2%}, past the tolerance of "
                f"-{self.tolerance:.2%}"
            )
        if self.max_slowdown is not None and self.slowdown > self.max_slowdown:
            found.append(
                f"it answers {self.slowdown:.2f}x slower than {self.parent} at batch 1 and 64, "
                f"past max_slowdown {self.max_slowdown:g}"
            )
        growth = 1 / max(self.size_ratio, 1e-12)
        if self.max_size_ratio is not None and growth > self.max_size_ratio:
            found.append(
                f"it is {growth:.2f}x the size of {self.parent}, past max_size_ratio "
                f"{self.max_size_ratio:g}"
            )
        return found

    @property
    def accepted(self) -> bool:
        """Whether the result is within every limit (metric, latency, size)."""
        return not self.problems()

    def refusal(self, *, force: str = "force=True") -> str:
        """Why the result was refused, and how to register it anyway (`force` names the
        option where the caller is: `force=True` in Python, `--force` on the command line)."""
        problems = "; ".join(self.problems()) or "within every limit"
        return (
            f"{self.step} of {self.parent} refused: {problems} (pass {force} to register it "
            f"anyway, tagged optimize.forced)\n\n{self.table()}"
        )

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
             times(self.size_ratio, "smaller", "larger")),
            ("p50 batch 1", ms(b.p50_batch1_ms), ms(a.p50_batch1_ms),
             times(self.speedup_batch1, "faster", "slower")),
            ("p50 batch 64", ms(b.p50_batch64_ms), ms(a.p50_batch64_ms),
             times(self.speedup_batch64, "faster", "slower")),
            (self.metric, f"{b.metric:.4f}", f"{a.metric:.4f}", f"{self.metric_change:+.2%}"),
        ]  # fmt: skip
        problems = self.problems()
        verdict = "accepted" if not problems else ("forced" if self.forced else "refused")
        if problems:
            verdict += ": " + "; ".join(problems)
        lines = [
            f"{self.step} of {self.parent} ({_settings(self.settings)}), {self.rows} rows, "
            f"{self._limits()}: {verdict}",
            "",
            f"| | {self.parent} | {self.step} | change |",
            "|---|---:|---:|---:|",
            *(f"| {name} | {x} | {y} | {z} |" for name, x, y, z in rows),
        ]
        return "\n".join(lines)

    def _limits(self) -> str:
        limits = [f"tolerance {self.tolerance:.2%}"]
        if self.max_slowdown is not None:
            limits.append(f"max slowdown {self.max_slowdown:g}x")
        if self.max_size_ratio is not None:
            limits.append(f"max size ratio {self.max_size_ratio:g}x")
        return ", ".join(limits)


def times(ratio: float, better: str, worse: str) -> str:
    """A ratio read the way people say it: 3.4 -> '3.40x faster', 0.29 -> '3.45x slower'."""
    if ratio >= 1:
        return f"{ratio:.2f}x {better}"
    return f"{1 / max(ratio, 1e-12):.2f}x {worse}"


def _bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024**2:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024**2:.1f} MiB"


def _settings(settings: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items()) or "defaults"
