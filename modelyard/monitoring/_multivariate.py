"""Multivariate drift: a change in how the input columns vary together, which a test per column
cannot see (two correlated columns whose correlation flips keep both their distributions).

Data reconstruction with PCA, as NannyML does it, with a threshold calibrated without in-sample
bias: at registration the reference's numeric columns (and its categorical ones, each replaced
by its level's share of the reference: frequency encoding) are standardised, missing values take
the column mean, and PCA keeps the components that explain 65% of the variance. The scaler and
PCA are fitted on one random half of the reference; the per-row reconstruction error (Euclidean
distance between a standardised row and its reconstruction) is measured on the other half, whose
mean and standard deviation are kept. A window drifted when its mean error exceeds the
reference's by a one-sided z test at `alpha` (Welch's standard error: both samples' sampling
error). Under no drift a window's rows are exchangeable with the held-out half, so the test fires
at its stated rate.

The stored reference (`monitoring/reference_multivariate.json`) also keeps a random sample of
reference rows, encoded, for the opt-in domain classifier (see `_domain_classifier`).
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard._imports import require
from modelyard.errors import ConfigurationError, InvalidInput
from modelyard.monitoring._domain_classifier import DomainClassifierDrift, classify_domains
from modelyard.monitoring._profile import Profile

REFERENCE_MULTIVARIATE = "monitoring/reference_multivariate.json"
FORMAT = "modelyard.multivariate/1"
VARIANCE = 0.65
"""Share of the standardised reference's variance the kept components explain (NannyML's)."""
ALPHA = 0.05
MIN_ROWS = 50
"""Fewer reference rows than this (25 per half) give no multivariate reference."""
MAX_COLUMNS = 1000
MAX_LEVELS = 100
"""Most frequent levels of a categorical column given their share; rarer ones encode as 0."""
MAX_FIT_ROWS = 100_000
FIT_CELLS = 5_000_000
"""Rows used to fit: at most MAX_FIT_ROWS, fewer for wide inputs (an SVD of 5M values)."""
SAMPLE_ROWS = 5000
SAMPLE_CELLS = 250_000
MAX_BYTES = 64 * 2**20
"""A stored reference is far smaller (at most ~14 MB: 1,000 columns); a larger one is refused."""
_CLIP = 1e6  # standardised values beyond this are clipped, so squares cannot overflow
_SEED = 0

Floats = npt.NDArray[np.float64]


class MultivariateDrift(BaseModel):
    """The window's reconstruction error against the reference's, and optionally the domain
    classifier's verdict.

    `score` is the window's mean error over the threshold calibrated for a window of its size:
    above 1 means drift (it is the `multivariate_drift` alert signal)."""

    model_config = ConfigDict(frozen=True)

    columns: int = Field(description="encoded input columns (numeric, and categorical ones)")
    components: int = Field(description="principal components kept")
    explained_variance: float
    reference_error: float = Field(description="mean reconstruction error, held-out reference")
    reference_error_std: float
    error: float = Field(description="the window's mean reconstruction error")
    threshold: float = Field(description="the mean error above which this window drifted")
    score: float = Field(description="error / threshold: above 1 means drift")
    p_value: float
    alpha: float
    drifted: bool
    domain_classifier: DomainClassifierDrift | None = None

    def table(self) -> tuple[list[str], list[tuple[str, str, str, str, str]]]:
        """Headers and a row per test, as the CLI and the report pages print them."""
        headers = ["test", "score", "p-value", "threshold", "drift"]
        rows = [("pca reconstruction", f"{self.error:.4g}", f"{self.p_value:.3g}",
                 f"{self.threshold:.4g}", "yes" if self.drifted else "")]  # fmt: skip
        classifier = self.domain_classifier
        if classifier is not None:
            rows.append(("domain classifier auc", f"{classifier.auc:.3f}",
                         f"{classifier.p_value:.3g}", f"alpha {classifier.alpha:g}",
                         "yes" if classifier.drifted else ""))  # fmt: skip
        return headers, rows

    def verdict(self) -> str:
        """One sentence on both tests."""
        word = "DRIFTED" if self.drifted else "no drift"
        text = (
            f"{word}: reconstruction error {self.error:.4g} against {self.reference_error:.4g} "
            f"in the reference (threshold {self.threshold:.4g}, p {self.p_value:.3g}, "
            f"{self.components} of {self.columns} components)"
        )
        classifier = self.domain_classifier
        if classifier is not None:
            found = "tells the window apart" if classifier.drifted else "cannot tell them apart"
            text += f"; domain classifier AUC {classifier.auc:.3f} (p {classifier.p_value:.3g}): "
            text += found
        return text


@dataclass(frozen=True)
class EncodedColumn:
    """An input column as PCA sees it: numbers as they are, or a categorical column's levels
    replaced by their share of the reference (`levels`; other levels are 0)."""

    name: str
    levels: Mapping[str, float] | None = None


@dataclass(frozen=True)
class MultivariateReference:
    """What a window's multivariate drift is measured against (see the module docstring)."""

    columns: tuple[EncodedColumn, ...]
    center: Floats
    scale: Floats
    components: Floats  # (k, d), orthonormal rows
    explained_variance: float
    error_mean: float
    error_std: float
    error_rows: int
    sample: Floats  # (rows, d) encoded reference rows; NaN where missing

    def encode(self, columns: Mapping[str, Any]) -> Floats:
        """`columns` (flat, by name) as the (rows, d) matrix PCA takes; a column the data lacks
        is missing (NaN) throughout."""
        return _matrix(self.columns, columns)

    def errors(self, matrix: Floats) -> Floats:
        """Each encoded row's distance to its reconstruction from the kept components."""
        return _reconstruction(_standardise(matrix, self.center, self.scale), self.components)

    def to_bytes(self) -> bytes:
        """JSON, arrays as base64 of little-endian float64, read back by `from_bytes`."""
        body = {
            "format": FORMAT,
            "columns": [
                {"name": c.name, "levels": None if c.levels is None else dict(c.levels)}
                for c in self.columns
            ],
            "center": _b64(self.center),
            "scale": _b64(self.scale),
            "components": _b64(self.components),
            "explained_variance": self.explained_variance,
            "calibration": {"rows": self.error_rows, "mean": self.error_mean,
                            "std": self.error_std},
            "sample": _b64(self.sample),
        }  # fmt: skip
        return orjson.dumps(body)

    @classmethod
    def from_bytes(cls, data: bytes) -> MultivariateReference:
        """The reference `to_bytes` wrote, every field checked: damaged or crafted bytes give
        `InvalidInput`."""
        try:
            stored = _Stored.model_validate_json(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise InvalidInput(f"damaged multivariate reference: {where}: {first['msg']}") from None
        return _restored(stored)


def fit_multivariate(
    columns: Mapping[str, Any], reference: Profile, *, seed: int = _SEED
) -> MultivariateReference | None:
    """Fit on flat reference `columns` (kinds as `reference` profiled them), or None when there
    are too few rows or fewer than two usable columns."""
    encoded = _encoded_columns(columns, reference)
    if not 2 <= len(encoded) <= MAX_COLUMNS:
        return None
    rows = len(columns[encoded[0].name])
    if rows < MIN_ROWS:
        return None
    rng = np.random.default_rng(seed)
    order = rng.permutation(rows)[: max(min(MAX_FIT_ROWS, FIT_CELLS // len(encoded)), MIN_ROWS)]
    matrix = _matrix(encoded, {c.name: np.asarray(columns[c.name])[order] for c in encoded})
    half = len(order) // 2
    fitted, held_out = matrix[:half], matrix[half:]
    center, scale = _moments(fitted)
    components, explained = _components(_standardise(fitted, center, scale))
    if components is None:
        return None
    errors = _reconstruction(_standardise(held_out, center, scale), components)
    cells = max(SAMPLE_CELLS // len(encoded), 1)
    sample = matrix[rng.permutation(len(matrix))[: min(SAMPLE_ROWS, cells)]]
    return MultivariateReference(
        tuple(encoded), center, scale, components, explained_variance=explained,
        error_mean=float(errors.mean()), error_std=float(errors.std(ddof=1)),
        error_rows=len(errors), sample=sample,
    )  # fmt: skip


def write_multivariate(
    folder: Path, columns: Mapping[str, Any], reference: Profile
) -> MultivariateReference | None:
    """Fit and store the multivariate reference beside the profiles (nothing when none fits)."""
    fitted = fit_multivariate(columns, reference)
    if fitted is not None:
        (folder / REFERENCE_MULTIVARIATE).parent.mkdir(parents=True, exist_ok=True)
        (folder / REFERENCE_MULTIVARIATE).write_bytes(fitted.to_bytes())
    return fitted


def read_multivariate(folder: Path) -> MultivariateReference | None:
    """The stored multivariate reference, or None for a version registered without one."""
    path = folder / REFERENCE_MULTIVARIATE
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_BYTES:
        raise InvalidInput(f"damaged multivariate reference: over {MAX_BYTES:,} bytes")
    return MultivariateReference.from_bytes(path.read_bytes())


def multivariate_drift(
    reference: MultivariateReference,
    columns: Mapping[str, Any],
    *,
    alpha: float = ALPHA,
    domain_classifier: bool = False,
) -> MultivariateDrift | None:
    """Drift of a window's flat `columns` in their joint distribution; None under two rows.
    `domain_classifier` also trains a classifier to tell reference rows from the window's
    (scikit-learn; slower)."""
    if not 0 < alpha < 1:
        raise ConfigurationError(f"alpha must lie between 0 and 1, got {alpha}")
    matrix = reference.encode(columns)
    rows = len(matrix)
    if rows < 2:
        return None
    stats: Any = require("scipy.stats", extra="monitor")
    errors = reference.errors(matrix)
    error, spread = float(errors.mean()), float(errors.std(ddof=1))
    standard_error = float(np.hypot(reference.error_std / np.sqrt(reference.error_rows),
                                    spread / np.sqrt(rows)))  # fmt: skip
    if standard_error > 0:
        p_value = float(stats.norm.sf((error - reference.error_mean) / standard_error))
    else:  # no spread anywhere: any difference at all is drift
        p_value = 0.0 if error > reference.error_mean * (1 + 1e-9) + 1e-12 else 1.0
    threshold = reference.error_mean + float(stats.norm.isf(alpha)) * standard_error
    return MultivariateDrift(
        columns=len(reference.columns), components=len(reference.components),
        explained_variance=reference.explained_variance,
        reference_error=reference.error_mean, reference_error_std=reference.error_std,
        error=error, threshold=threshold, score=error / max(threshold, 1e-12),
        p_value=p_value, alpha=alpha, drifted=p_value < alpha,
        domain_classifier=(
            classify_domains(reference.sample, matrix, alpha=alpha) if domain_classifier else None
        ),
    )  # fmt: skip


def _encoded_columns(columns: Mapping[str, Any], reference: Profile) -> list[EncodedColumn]:
    encoded = []
    for name, summary in reference.columns.items():
        if name not in columns:
            continue
        if summary.kind == "numeric":
            encoded.append(EncodedColumn(name))
            continue
        levels = _levels(columns[name])
        if levels:
            encoded.append(EncodedColumn(name, levels))
    return encoded


def _levels(values: Any) -> dict[str, float]:
    codes, uniques = _factorized(values)
    present = codes[codes >= 0]
    counts: Counter[str] = Counter()
    for unique, number in zip(uniques, np.bincount(present, minlength=len(uniques)), strict=True):
        counts[str(unique)] += int(number)
    return {level: number / len(present) for level, number in counts.most_common(MAX_LEVELS)}


def _encode(values: Any, levels: Mapping[str, float] | None) -> Floats:
    if levels is None:
        array = np.asarray(values)
        numbers = array.astype(np.float64) if array.dtype.kind in "biuf" else _coerced(array)
        return np.where(np.isfinite(numbers), numbers, np.nan)
    # Each distinct value looked up once (as text, as the profile keys levels), not each row.
    codes, uniques = _factorized(values)
    shares = np.array([levels.get(str(unique), 0.0) for unique in uniques] + [np.nan])
    return shares[codes]  # code -1 (missing) takes the last: NaN


def _factorized(values: Any) -> tuple[npt.NDArray[np.intp], Any]:
    pandas = require("pandas", extra="monitor")
    array = np.asarray(values)
    if array.dtype.kind != "O":
        array = array.astype(object)
    codes, uniques = pandas.factorize(array, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), uniques


def _coerced(array: npt.NDArray[Any]) -> Floats:
    pandas = require("pandas", extra="monitor")
    try:
        numbers = pandas.to_numeric(pandas.Series(array, dtype=object), errors="coerce")
        return np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError, OverflowError):  # values that are not numbers at all
        return np.full(len(array), np.nan)


def _matrix(encoded: Sequence[EncodedColumn], columns: Mapping[str, Any]) -> Floats:
    rows = len(next(iter(columns.values()))) if columns else 0
    matrix = np.full((rows, len(encoded)), np.nan, order="F")  # filled column by column
    for index, column in enumerate(encoded):
        values = columns.get(column.name)
        if values is not None and len(values) == rows:  # else missing (a ragged log)
            matrix[:, index] = _encode(values, column.levels)
    return matrix


def _moments(matrix: Floats) -> tuple[Floats, Floats]:
    present = ~np.isnan(matrix)
    counts = np.maximum(present.sum(axis=0), 1)
    with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308: scale 1 below
        center = np.where(present, matrix, 0.0).sum(axis=0) / counts
        deviation = np.where(present, matrix - center, 0.0)
        scale = np.sqrt((deviation**2).sum(axis=0) / counts)
    center = np.where(np.isfinite(center), center, 0.0)
    return center, np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def _standardise(matrix: Floats, center: Floats, scale: Floats) -> Floats:
    with np.errstate(over="ignore"):  # a difference past 1e308 is clipped like any other
        standard = matrix - center
        standard /= scale
    np.clip(standard, -_CLIP, _CLIP, out=standard)
    standard[np.isnan(standard)] = 0.0  # missing: the column mean
    return standard


def _components(standard: Floats) -> tuple[Floats | None, float]:
    # The eigenvectors of the d x d scatter matrix: an SVD of the tall matrix took 0.85 s on
    # 50,000 x 25, this 0.01 s.
    variance, vectors = np.linalg.eigh(standard.T @ standard)
    variance, vectors = np.maximum(variance[::-1], 0.0), vectors[:, ::-1]
    if not variance.sum() > 0:
        return None, 0.0
    shares = np.cumsum(variance) / variance.sum()
    kept = min(int(np.searchsorted(shares, VARIANCE)) + 1, standard.shape[1] - 1)
    return np.ascontiguousarray(vectors[:, :kept].T), float(shares[kept - 1])


def _reconstruction(standard: Floats, components: Floats) -> Floats:
    # |z - z C'C|^2 = |z|^2 - |z C'|^2 for orthonormal rows C: one product, no residual matrix
    projected = standard @ components.T
    squares: Floats = np.einsum("ij,ij->i", standard, standard)
    squares -= np.einsum("ij,ij->i", projected, projected)
    return np.sqrt(np.maximum(squares, 0.0))


class _StoredColumn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(max_length=10_000)
    levels: dict[str, float] | None = Field(default=None, max_length=MAX_LEVELS)


class _Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=2, strict=True)
    mean: float = Field(ge=0, allow_inf_nan=False)
    std: float = Field(ge=0, allow_inf_nan=False)


class _Stored(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["modelyard.multivariate/1"]
    columns: list[_StoredColumn] = Field(min_length=2, max_length=MAX_COLUMNS)
    center: str
    scale: str
    components: str
    explained_variance: float = Field(ge=0, le=1, allow_inf_nan=False)
    calibration: _Calibration
    sample: str


def _restored(stored: _Stored) -> MultivariateReference:
    width = len(stored.columns)
    names = [c.name for c in stored.columns]
    if len(set(names)) != width:
        raise InvalidInput("damaged multivariate reference: a column name repeats")
    for column in stored.columns:
        shares = list((column.levels or {}).values())
        if not all(np.isfinite(share) and 0 <= share <= 1 for share in shares):
            raise InvalidInput(f"damaged multivariate reference: column {column.name!r}: "
                               "level shares must lie in [0, 1]")  # fmt: skip
    center = _array(stored.center, "center", finite=True)
    scale = _array(stored.scale, "scale", finite=True)
    components = _array(stored.components, "components", finite=True)
    sample = _array(stored.sample, "sample", finite=False)
    if center.size != width or scale.size != width or not (scale > 0).all():
        raise InvalidInput(
            f"damaged multivariate reference: center and scale need {width} values (scale > 0)"
        )
    kept, extra = divmod(components.size, width)
    if extra or not 1 <= kept < width or np.abs(components).max() > 1 + 1e-6:
        raise InvalidInput(f"damaged multivariate reference: components must be k rows of "
                           f"{width} unit-bounded values, 1 <= k < {width}")  # fmt: skip
    if sample.size % width or sample.size // width > SAMPLE_ROWS or np.isinf(sample).any():
        raise InvalidInput(f"damaged multivariate reference: the sample must be at most "
                           f"{SAMPLE_ROWS} rows of {width} values, none infinite")  # fmt: skip
    calibration = stored.calibration
    return MultivariateReference(
        tuple(EncodedColumn(c.name, c.levels) for c in stored.columns), center, scale,
        components.reshape(kept, width), explained_variance=stored.explained_variance,
        error_mean=calibration.mean, error_std=calibration.std, error_rows=calibration.rows,
        sample=sample.reshape(-1, width),
    )  # fmt: skip


def _b64(values: Floats) -> str:
    return base64.b64encode(values.astype("<f8", copy=False).tobytes()).decode("ascii")


def _array(encoded: str, field: str, *, finite: bool) -> Floats:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"damaged multivariate reference: {field} is not base64") from None
    if len(raw) % 8:
        raise InvalidInput(f"damaged multivariate reference: {field} is not float64 values")
    values = np.frombuffer(raw, "<f8").astype(np.float64)
    if finite and not np.isfinite(values).all():
        raise InvalidInput(f"damaged multivariate reference: {field} has non-finite values")
    return values
