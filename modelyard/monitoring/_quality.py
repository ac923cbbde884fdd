"""`data_quality`: what is wrong with a window's values next to the reference, column by column.

Five checks, each a share (or a flag) compared with what the reference leads one to expect:
missing values, type mismatches (a string in a numeric column), numbers outside the reference's
range, categories the reference never saw, and constant columns. A share is flagged when it
exceeds the share expected from the reference by more than the check's margin
(`QualityThresholds`) and by more than `noise` standard errors (of a window of that size, and of
the reference's estimate), so a window drawn from the reference's own distribution stays quiet.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, computed_field

from modelyard._imports import require
from modelyard.monitoring._columns import CategoricalColumn, Column, NumericColumn
from modelyard.monitoring._profile import Profile

Check = Literal["missing", "type_mismatch", "out_of_range", "unseen_categories", "constant"]

#: The alert signal of each check: `<signal>:<column>`, and `missing_share` for the window.
SIGNALS: dict[Check, str] = {
    "missing": "missing_share",
    "type_mismatch": "type_mismatch_share",
    "out_of_range": "out_of_range_share",
    "unseen_categories": "unseen_categories",
    "constant": "constant",
}
#: Unseen categories named per column in a report.
EXAMPLES = 5
#: Characters kept of each example (category names come from requests: unbounded).
EXAMPLE_LENGTH = 64


class QualityThresholds(BaseModel):
    """How far above its expected value a share may go before its check flags an issue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    missing: float = Field(default=0.05, ge=0, le=1, description="over the reference's share")
    type_mismatch: float = Field(default=0.0, ge=0, le=1, description="over the reference's")
    out_of_range: float = Field(
        default=0.01, ge=0, le=1, description="over 2/(n+1), the chance for a new draw to fall "
        "outside the range of the reference's n values",
    )  # fmt: skip
    unseen_categories: float = Field(
        default=0.0, ge=0, le=1, description="over the mass the reference never drew: the "
        "share of its categories seen once (Good-Turing); none against a capped reference",
    )  # fmt: skip
    noise: float = Field(
        default=3.0, ge=0, description="standard errors allowed too: the window's sampling and "
        "the reference's estimate of the expected share",
    )  # fmt: skip


class ColumnQuality(BaseModel):
    """The checks of one column; a share is None where its check does not apply or has no
    values to look at (out-of-range on categories, unseen categories in an all-null window)."""

    model_config = ConfigDict(frozen=True)

    column: str
    kind: Literal["numeric", "categorical"]
    rows: int
    missing_share: float
    reference_missing_share: float
    type_mismatch_share: float
    out_of_range_share: float | None = None
    unseen_categories: float | None = Field(
        default=None, description="share of the window's non-null values in unseen categories"
    )
    unseen_examples: tuple[str, ...] = ()
    constant: bool = Field(default=False, description="one distinct value in the window")
    reference_constant: bool = False
    issues: tuple[Check, ...] = ()

    def signal(self, check: Check) -> float | None:
        """The value of the check's alert signal (`constant` is 1 or 0)."""
        if check == "missing":
            return self.missing_share
        if check == "type_mismatch":
            return self.type_mismatch_share
        if check == "out_of_range":
            return self.out_of_range_share
        if check == "unseen_categories":
            return self.unseen_categories
        return float(self.constant)


class QualityReport(BaseModel):
    """Per-column checks, the window's missing share, and the flagged checks as alert signals."""

    model_config = ConfigDict(frozen=True)

    columns: tuple[ColumnQuality, ...]
    rows: int
    missing_share: float = Field(description="null cells over all cells of the window")
    reference_missing_share: float
    missing: bool = Field(description="whether the window's missing share is flagged")
    thresholds: QualityThresholds = QualityThresholds()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def issues(self) -> tuple[str, ...]:
        """The flagged checks, named as their alert signals (`missing_share:age`)."""
        window = ("missing_share",) if self.missing else ()
        return window + tuple(
            f"{SIGNALS[check]}:{column.column}"
            for column in self.columns
            for check in column.issues
        )

    def verdict(self) -> str:
        """The report as one sentence: which checks flagged which columns."""
        count = len(self.issues)
        if not count:
            return f"no data quality issues in {len(self.columns)} columns"
        flagged = sum(bool(column.issues) for column in self.columns)
        found = [
            f"{_PHRASES[check]} ({', '.join(names)})"
            for check in SIGNALS
            if (names := [c.column for c in self.columns if check in c.issues])
        ]
        if self.missing:
            found.insert(0, f"{self.missing_share:.1%} of the window's cells missing "
                         f"(reference {self.reference_missing_share:.1%})")  # fmt: skip
        return (f"{count} data quality issue{'s' * (count != 1)} in {flagged} of "
                f"{len(self.columns)} columns: {'; '.join(found)}")  # fmt: skip

    def signals(self) -> list[tuple[str, str, float]]:
        """(column, signal, value) of every check with a value; column "" is the window."""
        found = [("", "missing_share", self.missing_share)]
        for column in self.columns:
            for check, signal in SIGNALS.items():
                value = column.signal(check)
                if value is not None:
                    found.append((column.column, signal, value))
        return found

    def table(self) -> tuple[list[str], list[tuple[str, ...]]]:
        """Headers, and a row of shares for each column with an issue."""
        rows: list[tuple[str, ...]] = [
            (c.column, _percent(c.missing_share), _percent(c.reference_missing_share),
             _percent(c.type_mismatch_share), _percent(c.out_of_range_share),
             _percent(c.unseen_categories), ", ".join(map(repr, c.unseen_examples)),
             "yes" if c.constant else "", ", ".join(c.issues))
            for c in self.columns if c.issues
        ]  # fmt: skip
        headers = ["column", "missing", "ref missing", "wrong type", "out of range", "unseen",
                   "unseen examples", "constant", "issues"]  # fmt: skip
        return headers, rows


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


_PHRASES: dict[Check, str] = {
    "missing": "missing values",
    "type_mismatch": "values of the wrong type",
    "out_of_range": "values out of the reference's range",
    "unseen_categories": "unseen categories",
    "constant": "constant",
}


def data_quality(
    reference: Profile, current: Profile, *, thresholds: QualityThresholds | None = None
) -> QualityReport:
    """Check every column of `reference` in `current` (profiled with `reference=reference`, so
    numeric histograms share edges and count what falls outside the reference's range).

        report = data_quality(reference, profile(window, reference=reference))
        report.issues  # ('missing_share:age', 'unseen_categories:country')
    """
    limits = thresholds or QualityThresholds()
    rows = current.rows
    columns = tuple(
        _column(name, known, current.columns.get(name), rows, limits)
        for name, known in reference.columns.items()
    )
    cells = rows * len(columns)
    missing = sum(column.missing_share for column in columns) * rows / cells if cells else 0.0
    nulls = sum(column.nulls for column in reference.columns.values())
    expected = _binomial(nulls, reference.rows * len(reference.columns), rows=reference.rows)
    return QualityReport(
        columns=columns,
        rows=rows,
        missing_share=missing,
        reference_missing_share=expected[0],
        missing=_exceeds(missing, expected, rows, limits.missing, limits.noise),
        thresholds=limits,
    )


def quality_value(signal: str, report: QualityReport | None) -> float | None:
    """A data quality alert signal (`missing_share`, `unseen_categories:country`, …) in
    `report`; None without a report, or for a column it does not have."""
    if report is None:
        return None
    if signal == "missing_share":
        return report.missing_share
    name, _, column = signal.partition(":")
    checks = [check for check, spelt in SIGNALS.items() if spelt == name]
    for found in report.columns:
        if checks and found.column == column:
            return found.signal(checks[0])
    return None


def _column(
    name: str, reference: Column, current: Column | None, rows: int, limits: QualityThresholds
) -> ColumnQuality:
    expected_missing = _binomial(reference.nulls, reference.count)
    fields: dict[str, object] = {"column": name, "kind": reference.kind, "rows": rows,
                                 "reference_missing_share": expected_missing[0]}  # fmt: skip
    if current is None:  # the column is gone from the window: every value is missing
        fields.update(missing_share=1.0, type_mismatch_share=0.0, issues=("missing",))
        return ColumnQuality.model_validate(fields)
    missing = _share(current.nulls, current.count)
    fields["missing_share"] = missing
    if current.kind != reference.kind:  # every value present is of the wrong kind
        flagged = _exceeds(missing, expected_missing, rows, limits.missing, limits.noise)
        fields.update(type_mismatch_share=1 - missing,
                      issues=_flags(missing=flagged, type_mismatch=missing < 1))  # fmt: skip
        return ColumnQuality.model_validate(fields)
    fields.update(
        type_mismatch_share=_share(current.mismatches, current.count),
        constant=_constant(current),
        reference_constant=_constant(reference),
        **_values(reference, current, limits.noise),
    )
    found = ColumnQuality.model_validate(fields)
    return found.model_copy(update={"issues": _issues(found, reference, current, limits)})


def _values(reference: Column, current: Column, noise: float) -> dict[str, object]:
    if isinstance(reference, NumericColumn) and isinstance(current, NumericColumn):
        return {"out_of_range_share": _out_of_range(reference, current)}
    if isinstance(reference, CategoricalColumn) and isinstance(current, CategoricalColumn):
        counted = sum(current.frequencies.values()) + current.other
        absent = sum(name not in reference.frequencies for name in current.frequencies)
        most = _most_folded(reference, counted, absent, noise) if reference.other else 0.0
        unseen = sorted(
            (name for name, number in current.frequencies.items()
             if name not in reference.frequencies and number > most),
            key=lambda name: (-current.frequencies[name], name),
        )  # fmt: skip
        share = _share(sum(current.frequencies[name] for name in unseen), counted)
        examples = tuple(name[:EXAMPLE_LENGTH] for name in unseen[:EXAMPLES])
        return {"unseen_categories": share if counted else None, "unseen_examples": examples}
    return {}


def _out_of_range(reference: NumericColumn, current: NumericColumn) -> float | None:
    counts = current.histogram.counts
    numbers = int(counts.sum())
    if numbers == 0:
        return None
    edges = (reference.histogram.low, reference.histogram.high, reference.histogram.counts.size)
    if (current.histogram.low, current.histogram.high, counts.size) == edges and (
        reference.minimum,
        reference.maximum,
    ) == edges[:2]:
        return float(counts[0] + counts[-1]) / numbers
    # Other edges (a window profiled without reference=, a constant reference whose histogram
    # spans [c, c + 1]): estimate the share from the window's uniform sample of its values.
    sample = np.asarray(current.reservoir.values, dtype=np.float64)
    if sample.size == 0:
        return None
    outside = (sample < reference.minimum) | (sample > reference.maximum)
    return float(outside.mean())


def _constant(column: Column) -> bool:
    if isinstance(column, NumericColumn):
        return int(column.histogram.counts.sum()) >= 2 and column.minimum == column.maximum
    counted = sum(column.frequencies.values())
    return counted >= 2 and len(column.frequencies) == 1 and column.other == 0


def _issues(
    found: ColumnQuality, reference: Column, current: Column, limits: QualityThresholds
) -> tuple[Check, ...]:
    count, noise = current.count, limits.noise
    flags = {
        "missing": _exceeds(found.missing_share, _binomial(reference.nulls, reference.count),
                            count, limits.missing, noise),
        "type_mismatch": _exceeds(found.type_mismatch_share,
                                  _binomial(reference.mismatches, reference.count), count,
                                  limits.type_mismatch, noise),
        "constant": found.reference_constant or found.constant,
    }  # fmt: skip
    if isinstance(reference, NumericColumn) and isinstance(current, NumericColumn):
        flags["out_of_range"] = found.out_of_range_share is not None and _exceeds(
            found.out_of_range_share, _outside_range(int(reference.histogram.counts.sum())),
            int(current.histogram.counts.sum()), limits.out_of_range, noise,
        )  # fmt: skip
    if isinstance(reference, CategoricalColumn) and isinstance(current, CategoricalColumn):
        flags["unseen_categories"] = found.unseen_categories is not None and _exceeds(
            found.unseen_categories, _unseen_mass(reference),
            sum(current.frequencies.values()) + current.other, limits.unseen_categories, noise,
        )  # fmt: skip
    return _flags(**flags)


Expected = tuple[float, float]
"""A share expected in the window, and the variance of that estimate from the reference."""


def _binomial(part: int, whole: int, *, rows: int | None = None) -> Expected:
    share = _share(part, whole)
    return share, share * (1 - share) / (rows or whole) if whole else 0.0


def _outside_range(numbers: int) -> Expected:
    """A new value falls outside the range of `numbers` values of a continuous distribution
    with probability 2/(n+1) on average; the mass outside is Beta(2, n-1) distributed."""
    n = max(numbers, 0)
    return 2 / (n + 1), 2 * (n - 1) / ((n + 1) ** 2 * (n + 2)) if n else 0.0


def _most_folded(reference: CategoricalColumn, values: int, absent: int, noise: float) -> float:
    """The most values, of a window of `values`, that any of `absent` categories folded into
    the reference's `other` would plausibly show: a folded one had at most the smallest count
    kept (its share at most `noise` standard errors above that), and its count in the window
    is Poisson, checked at the normal tail of `noise` shared among the `absent` categories."""
    stats = require("scipy.stats", extra="monitor")
    total = max(sum(reference.frequencies.values()) + reference.other, 1)
    smallest = max(min(reference.frequencies.values(), default=reference.other), 0)
    share = (smallest + noise * math.sqrt(smallest) + 1) / total
    tail = float(stats.norm.sf(noise)) / max(absent, 1)
    return float(stats.poisson.isf(tail, values * share))


def _unseen_mass(reference: CategoricalColumn) -> Expected:
    """The share of values expected in categories the reference never drew, estimated by
    Good-Turing as the share of its categories seen once (variance after Esty, 1983). None are
    expected against a capped reference: only categories too frequent to have been folded into
    its `other` count as unseen there."""
    total = sum(reference.frequencies.values())
    if reference.other or not total:
        return 0.0, 0.0
    once = sum(1 for number in reference.frequencies.values() if number == 1)
    twice = sum(1 for number in reference.frequencies.values() if number == 2)
    return once / total, (once + 2 * twice) / total**2


def _flags(**flags: bool) -> tuple[Check, ...]:
    return tuple(check for check in SIGNALS if flags.get(check, False))


def _exceeds(share: float, expected: Expected, size: int, margin: float, noise: float) -> bool:
    """Whether `share` of `size` values is above the expected share by more than `margin` and
    by more than `noise` standard errors (the window's sampling and the reference's estimate)."""
    mean, variance = min(max(expected[0], 0.0), 1.0), max(expected[1], 0.0)  # a crafted profile
    if not size:
        return share > mean + margin
    spread = noise * math.sqrt(mean * (1 - mean) / size + variance)
    # A rare event's count is skewed: one value more than the normal bound keeps small windows
    # quiet. When the reference says never (mean 0), a single value is the defect.
    slack = 1 / size if mean > 0 else 0.0
    return share > mean + max(margin, spread + slack)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
