"""`detect_drift`: compare a reference profile with a current one, column by column."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.errors import ConfigurationError, InvalidInput
from modelyard.monitoring._columns import Column
from modelyard.monitoring._profile import Profile
from modelyard.monitoring._statistics import BUILTIN_TESTS, DriftTest

#: The test each kind of column gets unless `tests` names another.
DEFAULT_TESTS: Mapping[str, str] = {"numeric": "ks", "categorical": "chisquare"}


class ColumnDrift(BaseModel):
    """The outcome of one column's drift test."""

    model_config = ConfigDict(frozen=True)

    column: str
    kind: Literal["numeric", "categorical"]
    test: str
    score: float
    p_value: float | None = Field(description="None for distances, which have no p-value")
    threshold: float = Field(description="alpha for tests with a p-value, else the distance")
    drifted: bool


class DriftReport(BaseModel):
    """Per-column outcomes and the dataset verdict: drifted when `share` >= `share_threshold`."""

    model_config = ConfigDict(frozen=True)

    columns: tuple[ColumnDrift, ...]
    share: float = Field(description="share of the columns that drifted")
    share_threshold: float
    drifted: bool

    def verdict(self) -> str:
        """The dataset verdict as a sentence that agrees with the columns: a report where some
        columns drifted never reads "no drift", even when too few did to mark the dataset
        (an alert rule on `drift_share` may fire at a lower share than `share_threshold`)."""
        count = sum(column.drifted for column in self.columns)
        of = f"{count} of {len(self.columns)} columns drifted ({self.share:.0%})"
        if self.drifted:
            return f"DRIFTED: {of}, at least the {self.share_threshold:.0%} that marks the dataset"
        if count:
            return f"{of}, under the {self.share_threshold:.0%} that marks the dataset as drifted"
        return f"no drift: {of}"

    def to_json(self) -> str:
        """The report as a JSON document."""
        return self.model_dump_json()


def detect_drift(
    reference: Profile,
    current: Profile,
    *,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    share: float = 0.5,
) -> DriftReport:
    """Test every column of `reference` for drift in `current`.

    Numeric columns get "ks" and categorical ones "chisquare" unless `tests` maps a column to
    another ("psi", "wasserstein"; "psi", "jensenshannon"); `thresholds` overrides a column's
    threshold. The dataset drifted when at least `share` of the columns did.

        report = detect_drift(reference, window, tests={"age": "psi"}, thresholds={"age": 0.1})
        if report.drifted: ...
    """
    tests, thresholds = dict(tests or {}), dict(thresholds or {})
    _check_options(reference, tests, thresholds, share)
    outcomes = tuple(
        _test_column(name, column, _current(current, name), tests, thresholds)
        for name, column in reference.columns.items()
    )
    drifted_share = sum(outcome.drifted for outcome in outcomes) / len(outcomes)
    return DriftReport(
        columns=outcomes,
        share=drifted_share,
        share_threshold=share,
        drifted=drifted_share >= share,
    )


def testable_columns(reference: Profile, current: Profile) -> Profile:
    """The reference's columns that have values on both sides: a column all null (or all of
    the wrong type) has no distribution to test; the data quality section reports it."""

    def tested(column: Column) -> bool:
        return column.valid - column.mismatches > 0

    return Profile({
        name: column for name, column in reference.columns.items()
        if tested(column) and name in current.columns and tested(current.columns[name])
    })  # fmt: skip


def _check_options(
    reference: Profile, tests: Mapping[str, str], thresholds: Mapping[str, float], share: float
) -> None:
    if not 0 < share <= 1:
        raise ConfigurationError(f"share must be in (0, 1], not {share}")
    for name in [*tests, *thresholds]:
        if name not in reference.columns:
            raise ConfigurationError(
                f"drift options name column {name!r}, which the reference profile does not have "
                f"(it has {', '.join(reference.columns)})"
            )


def _current(current: Profile, name: str) -> Column:
    try:
        return current.columns[name]
    except KeyError:
        raise InvalidInput(
            f"column {name!r} is in the reference profile but missing from the current one"
        ) from None


def _test_column(
    name: str,
    reference: Column,
    current: Column,
    tests: Mapping[str, str],
    thresholds: Mapping[str, float],
) -> ColumnDrift:
    if reference.kind != current.kind:
        raise InvalidInput(
            f"column {name!r} is {reference.kind} in the reference and {current.kind} now"
        )
    for side, column in (("reference", reference), ("current", current)):
        if column.valid == 0:
            raise InvalidInput(f"column {name!r} has no non-null values in the {side} profile")
    test = _find(name, reference.kind, tests.get(name, DEFAULT_TESTS[reference.kind]))
    threshold = thresholds.get(name, test.threshold)
    score, p_value = test.compare(reference, current)
    return ColumnDrift(
        column=name,
        kind=test.kind,  # type: ignore[arg-type]
        test=test.name,
        score=score,
        p_value=p_value,
        threshold=threshold,
        drifted=test.fires(score, p_value, threshold),
    )


def _find(column: str, kind: str, name: str) -> DriftTest:
    try:
        return BUILTIN_TESTS[kind, name]
    except KeyError:
        known = sorted(test for test_kind, test in BUILTIN_TESTS if test_kind == kind)
        raise ConfigurationError(
            f"unknown drift test {name!r} for {kind} column {column!r}; use one of {known}"
        ) from None
