"""detect_drift: calibration on identical distributions, power on shifted ones, and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelyard.errors import ConfigurationError, InvalidInput
from modelyard.monitoring import ColumnDrift, DriftReport, detect_drift, profile
from tests.monitoring.conftest import table

NUMERIC = ["ks", "psi", "wasserstein"]
CATEGORICAL = ["chisquare", "psi", "jensenshannon"]
# Column age or income gets NUMERIC[i], colour gets CATEGORICAL[i].
CONFIGS = [{"age": n, "income": n, "colour": c} for n, c in zip(NUMERIC, CATEGORICAL, strict=True)]
PAIRS = 200


def firing_rates(rng: np.random.Generator, *, shift: float, rows: int) -> dict[str, float]:
    """How often each test fires over PAIRS pairs of windows of `rows` rows."""
    fired: dict[str, int] = {}
    for _ in range(PAIRS):
        reference = profile(table(rng, rows), seed=int(rng.integers(2**32)))
        current = profile(table(rng, rows, shift=shift), reference=reference, seed=1)
        for config in CONFIGS:
            for outcome in detect_drift(reference, current, tests=config).columns:
                key = f"{outcome.column}:{outcome.test}"
                fired[key] = fired.get(key, 0) + outcome.drifted
    return {key: count / PAIRS for key, count in fired.items()}


def test_tests_fire_no_more_than_their_false_positive_rate(rng: np.random.Generator) -> None:
    # 5,000 rows > the 4,096-value reservoirs, so KS runs on subsamples, as on real windows.
    rates = firing_rates(rng, shift=0.0, rows=5_000)
    for key, rate in rates.items():
        # alpha 0.05 over 200 pairs: 8% is about two standard errors above it
        limit = 0.08 if key.endswith((":ks", ":chisquare")) else 0.02
        assert rate <= limit, f"{key} fired in {rate:.0%} of same-distribution pairs"


def test_tests_fire_on_clear_shifts(rng: np.random.Generator) -> None:
    rates = firing_rates(rng, shift=0.6, rows=5_000)
    assert min(rates.values()) >= 0.95, rates


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_verdicts_agree_with_scipy_on_the_full_data(shift: float) -> None:
    rng = np.random.default_rng(7)
    reference_data, current_data = table(rng, 50_000), table(rng, 50_000, shift=shift)
    reference = profile(reference_data, seed=1)
    report = detect_drift(reference, profile(current_data, reference=reference, seed=2))
    for outcome in report.columns:
        before, after = reference_data[outcome.column], current_data[outcome.column]
        assert outcome.drifted == (scipy_p_value(before, after) < 0.05), outcome
    assert report.drifted == (shift > 0)


def scipy_p_value(before: pd.Series, after: pd.Series) -> float:
    if before.dtype.kind == "f":
        return float(stats.ks_2samp(before, after).pvalue)
    expected = before.value_counts(normalize=True)
    observed = after.value_counts().reindex(expected.index, fill_value=0)
    return float(stats.chisquare(observed, expected * observed.sum()).pvalue)


def test_report_shape_share_and_thresholds(rng: np.random.Generator) -> None:
    reference = profile(table(rng, 5_000), seed=1)
    current = profile(table(rng, 5_000, shift=0.6), reference=reference, seed=2)
    report = detect_drift(reference, current, thresholds={"age": 1e-300}, share=0.9)
    assert isinstance(report, DriftReport)
    by_name = {outcome.column: outcome for outcome in report.columns}
    assert isinstance(by_name["age"], ColumnDrift)
    assert by_name["age"].threshold == 1e-300 and by_name["age"].p_value is not None
    assert report.share == pytest.approx(sum(c.drifted for c in report.columns) / 3)
    assert report.drifted == (report.share >= 0.9)
    assert json.loads(report.to_json())["columns"][0]["test"] == "ks"
    psi = detect_drift(reference, current, tests={"age": "psi"}).columns[0]
    assert (psi.test, psi.p_value, psi.threshold) == ("psi", None, 0.2)
    with pytest.raises(ValueError, match="frozen"):
        report.share = 0.0


def test_bad_options_and_profiles_are_named(rng: np.random.Generator) -> None:
    reference = profile(table(rng, 100), seed=1)
    current = profile(table(rng, 100), seed=2)
    with pytest.raises(ConfigurationError, match="unknown drift test 'kstest'.*'ks'"):
        detect_drift(reference, current, tests={"age": "kstest"})
    with pytest.raises(ConfigurationError, match="'chisquare' for numeric column 'age'"):
        detect_drift(reference, current, tests={"age": "chisquare"})
    with pytest.raises(ConfigurationError, match="column 'height'"):
        detect_drift(reference, current, thresholds={"height": 0.1})
    with pytest.raises(ConfigurationError, match="share"):
        detect_drift(reference, current, share=0)
    partial = profile(table(rng, 100).drop(columns="income"))
    with pytest.raises(InvalidInput, match="'income' is in the reference profile but missing"):
        detect_drift(reference, partial)
    as_text = profile(table(rng, 100).astype({"age": str}))
    with pytest.raises(InvalidInput, match="'age' is numeric in the reference and categorical"):
        detect_drift(reference, as_text)
    empty = profile({"age": np.full(5, np.nan)})
    with pytest.raises(InvalidInput, match="'age' has no non-null values in the current"):
        detect_drift(profile({"age": [1.0, 2.0]}), empty)
