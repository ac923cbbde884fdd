"""Embedding drift: whether a window's vectors come from the distribution of the reference's.

An input or output is an embedding when it is numeric and at least 8 wide: a 2-D array `name`
of shape (rows, k >= 8), logged as the flat columns `name[0]` … `name[k-1]` (`flat_columns`).
Any group of exactly those columns, all numeric (integers or floats), counts, whatever made it.
Per-coordinate tests miss a rotation or a shift spread thinly over hundreds of coordinates;
this test looks at the vectors whole (the coordinates still get their univariate tests).

At registration a uniform sample of up to 1,000 reference vectors per embedding is stored as
float32 in `monitoring/reference_embeddings.json`, with the kernel bandwidth: the median
distance between those vectors. A window is compared with it by the squared maximum mean
discrepancy (MMD², the unbiased estimate of Gretton et al. 2012) under the Gaussian kernel, on
up to 500 vectors a side, and a permutation test (200 relabellings, seeded, so a report is
reproducible) gives the p-value; the embedding drifted when p < alpha (0.05). The kernel matrix
is computed once; each relabelling only re-weights it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from modelyard.monitoring._reference_files import (
    bounded,
    decode_array,
    encode_array,
    field,
    name_of,
    positive,
    read_entries,
    side_of,
    write_document,
)

REFERENCE_EMBEDDINGS = "monitoring/reference_embeddings.json"
FORMAT = "modelyard.embeddings/1"
MIN_WIDTH = 8
STORED_ROWS = 1_000
TESTED_ROWS = 500
PERMUTATIONS = 200
ALPHA = 0.05
_MAX_WIDTH = 2**16
_INDEXED = re.compile(r"(.+)\[(0|[1-9][0-9]*)\]")

Side = Literal["inputs", "outputs"]
Columns = Mapping[str, npt.NDArray[Any]]
Floats = npt.NDArray[np.float64]


class EmbeddingDrift(BaseModel):
    """The outcome of the MMD test on one embedding input or output."""

    model_config = ConfigDict(frozen=True)
    HEADERS: ClassVar[tuple[str, ...]] = (
        "embedding", "side", "width", "rows", "MMD²", "mean shift", "p-value", "drift",
    )  # fmt: skip

    name: str
    side: Side
    width: int
    reference_rows: int = Field(description="reference vectors compared")
    window_rows: int = Field(description="window vectors compared")
    mmd2: float = Field(description="unbiased MMD² under the Gaussian kernel (0: no difference)")
    mean_shift: float = Field(description="distance between the mean vectors, in bandwidths")
    p_value: float = Field(description="permutation p-value of the MMD²")
    threshold: float = Field(default=ALPHA, description="alpha: drifted when p_value < it")
    drifted: bool

    @property
    def signal(self) -> float:
        """The alert signal `embedding_drift:<name>`: 1 - p-value (0.95 is alpha 0.05)."""
        return 1.0 - self.p_value

    def cells(self) -> tuple[str, ...]:
        """The row of a table under `HEADERS`."""
        return (self.name, self.side, str(self.width),
                f"{self.reference_rows}/{self.window_rows}", f"{self.mmd2:.4g}",
                f"{self.mean_shift:.3g}", f"{self.p_value:.3g}",
                "yes" if self.drifted else "")  # fmt: skip


@dataclass(frozen=True)
class StoredEmbedding:
    """A reference sample of one embedding: vectors (rows, width) and the kernel bandwidth."""

    name: str
    side: Side
    vectors: npt.NDArray[np.float32]
    bandwidth: float


def embedding_groups(columns: Columns) -> dict[str, list[str]]:
    """The embeddings among flat columns: each base name with its columns in index order."""
    found: dict[str, dict[int, str]] = {}
    for name in columns:
        match = _INDEXED.fullmatch(name)
        if match is not None:
            found.setdefault(match[1], {})[int(match[2])] = name
    groups = {}
    for base, indexed in found.items():
        names = [indexed.get(index, "") for index in range(len(indexed))]
        if len(names) >= MIN_WIDTH and all(names) and base not in columns:
            if all(np.asarray(columns[name]).dtype.kind in "iuf" for name in names):
                groups[base] = names
    return groups


def reference_embeddings(
    inputs: Columns, outputs: Columns, *, rows: int = STORED_ROWS, seed: int = 0
) -> list[StoredEmbedding]:
    """A sample of up to `rows` vectors of every embedding among the flat columns."""
    rng = np.random.default_rng(seed)
    stored = []
    sides: tuple[tuple[Side, Columns], ...] = (("inputs", inputs), ("outputs", outputs))
    for side, columns in sides:
        for base, names in embedding_groups(columns).items():
            vectors = _vectors(columns, names, rows, rng)
            if vectors is not None and len(vectors) >= 2:
                bandwidth = _median_distance(vectors)
                stored.append(StoredEmbedding(base, side, vectors.astype(np.float32), bandwidth))
    return stored


def embedding_drift(
    reference: list[StoredEmbedding], inputs: Columns, outputs: Columns, *, seed: int = 0
) -> tuple[EmbeddingDrift, ...]:
    """The MMD test of every stored embedding against the window's vectors of it (an embedding
    the window lacks, or has fewer than two finite vectors of, is left out)."""
    drifts = []
    for stored in reference:
        columns = inputs if stored.side == "inputs" else outputs
        width = stored.vectors.shape[1]
        names = [f"{stored.name}[{index}]" for index in range(width)]
        if not all(name in columns for name in names):
            continue
        window = _vectors(columns, names, TESTED_ROWS, np.random.default_rng(seed))
        if window is None or len(window) < 2:
            continue
        sample = stored.vectors[:TESTED_ROWS].astype(np.float64)
        mmd2, p_value = mmd_test(sample, window, bandwidth=stored.bandwidth, seed=seed)
        shift = float(np.linalg.norm(sample.mean(axis=0) - window.mean(axis=0)))
        drifts.append(EmbeddingDrift(
            name=stored.name, side=stored.side, width=width, reference_rows=len(sample),
            window_rows=len(window), mmd2=mmd2, mean_shift=shift / stored.bandwidth,
            p_value=p_value, drifted=p_value < ALPHA,
        ))  # fmt: skip
    return tuple(drifts)


def mmd_test(
    reference: Floats,
    window: Floats,
    *,
    bandwidth: float,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> tuple[float, float]:
    """The unbiased MMD² of two samples of vectors (at least two each) under the Gaussian
    kernel of `bandwidth`, and its permutation p-value, (1 + #{permuted >= observed}) / (1 +
    permutations): on two samples of one distribution, P(p < alpha) <= alpha."""
    n, m = len(reference), len(window)
    pooled = np.concatenate([reference, window])
    pooled -= pooled.mean(axis=0)  # distances from a centred cloud lose fewer digits
    squares = np.einsum("ij,ij->i", pooled, pooled)
    distances = np.maximum(squares[:, None] + squares[None, :] - 2 * pooled @ pooled.T, 0)
    np.fill_diagonal(distances, 0)
    kernel = np.exp(-distances / (2 * bandwidth**2))
    rng = np.random.default_rng(seed)
    labels = np.zeros((n + m, permutations + 1))
    labels[:n, 0] = 1  # column 0: the observed split; the others: random relabellings
    chosen = np.argsort(rng.random((permutations, n + m)), axis=1)[:, :n]
    labels[chosen.ravel(), np.repeat(np.arange(1, permutations + 1), n)] = 1
    statistics = _mmd2(kernel, labels, n, m)
    exceed = int(np.sum(statistics[1:] >= statistics[0]))
    return float(statistics[0]), (1 + exceed) / (1 + permutations)


def _mmd2(kernel: Floats, labels: Floats, n: int, m: int) -> Floats:
    # With a the indicator of the first sample: a'Ka, a'K(1-a) and (1-a)'K(1-a) from one product.
    weighted = kernel @ labels
    rows = kernel.sum(axis=1)
    within: Floats = np.einsum("ij,ij->j", labels, weighted)
    across = labels.T @ rows - within
    other = rows.sum() - 2 * across - within
    # The kernel's diagonal is 1: the unbiased estimate leaves those n and m terms out.
    mmd2: Floats = (within - n) / (n * (n - 1)) + (other - m) / (m * (m - 1))
    mmd2 -= 2 * across / (n * m)
    return mmd2


def _vectors(
    columns: Columns, names: list[str], rows: int, rng: np.random.Generator
) -> Floats | None:
    """Up to `rows` vectors drawn uniformly, without the rows holding NaN or infinities, or
    None when a coordinate is not numbers."""
    length = len(columns[names[0]])
    if any(len(columns[name]) != length for name in names):
        return None
    chosen = np.sort(rng.choice(length, size=min(rows, length), replace=False))
    try:
        matrix = np.column_stack([np.asarray(columns[n][chosen], dtype=np.float64) for n in names])
    except (TypeError, ValueError):
        return None
    return matrix[np.isfinite(matrix).all(axis=1)]


def _median_distance(vectors: Floats) -> float:
    """The median heuristic: the median distance between distinct vectors (1.0 when all are
    equal, where any bandwidth gives a kernel of ones)."""
    centred = vectors - vectors.mean(axis=0)
    squares = np.einsum("ij,ij->i", centred, centred)
    distances = squares[:, None] + squares[None, :] - 2 * centred @ centred.T
    upper = np.sqrt(np.maximum(distances[np.triu_indices(len(vectors), k=1)], 0))
    positive_distances = upper[upper > 0]
    return float(np.median(positive_distances)) if positive_distances.size else 1.0


def write_embeddings(folder: Path, embeddings: list[StoredEmbedding]) -> None:
    """Store the reference vectors in the version's `folder` (none: no file)."""
    entries = [
        {"name": e.name, "side": e.side, "rows": int(e.vectors.shape[0]),
         "width": int(e.vectors.shape[1]), "bandwidth": e.bandwidth,
         "vectors": encode_array(e.vectors, "<f4")}
        for e in embeddings
    ]  # fmt: skip
    body = {"format": FORMAT, "embeddings": entries} if entries else None
    write_document(folder / REFERENCE_EMBEDDINGS, body)


def read_embeddings(folder: Path) -> list[StoredEmbedding]:
    """The reference vectors stored with a version (none for a version without embeddings, or
    registered before they were stored); `InvalidInput` for a damaged file."""
    path = folder / REFERENCE_EMBEDDINGS
    return read_entries(path, FORMAT, "embeddings", _entry)


def _entry(entry: object) -> StoredEmbedding:
    side = side_of(entry)
    rows = bounded(entry, "rows", 2, 10 * STORED_ROWS)
    width = bounded(entry, "width", 1, _MAX_WIDTH)
    vectors = decode_array(field(entry, "vectors", str), "<f4", rows * width)
    return StoredEmbedding(name_of(entry), side, vectors.reshape(rows, width),
                           positive(entry, "bandwidth"))  # fmt: skip
