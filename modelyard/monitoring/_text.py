"""Text drift: whether a window's texts look like the reference's, by four simple descriptors.

A string column is text when, of its first 1,000 non-null values, at least half are strings
of 20 characters or more that contain whitespace (a sentence rather than a label such as
"New York"). Each text is described by its length in characters, its number of words (runs of
letters, digits and underscores, lowercased), its out-of-vocabulary share (of its words, those
not among the reference's 10,000 commonest) and its non-ASCII share (of its characters).

At registration, `monitoring/reference_text.json` keeps per text column the vocabulary and a
sample of up to 2,000 values of each descriptor. The vocabulary comes from one half of the
reference rows and the out-of-vocabulary shares from the other half, so the reference's own
share is measured on unseen text as a window's is (in-sample, every reference word would be
known and any new window would look drifted). A window's descriptors (of up to 5,000 texts) are
compared with the reference's by two-sample KS tests; the column drifted when the smallest
p-value, times 4 for the four tests (Bonferroni), is under alpha (0.05).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from modelyard._imports import require
from modelyard.monitoring._reference_files import (
    DamagedFile,
    bounded,
    decode_array,
    encode_array,
    field,
    name_of,
    read_entries,
    side_of,
    write_document,
)

REFERENCE_TEXT = "monitoring/reference_text.json"
FORMAT = "modelyard.text/1"
DESCRIPTORS = ("characters", "words", "oov_share", "non_ascii_share")
VOCABULARY = 10_000
STORED_ROWS = 2_000
TESTED_ROWS = 5_000
ALPHA = 0.05
MIN_CHARACTERS = 20
_SNIFFED = 1_000
_WORD = re.compile(r"\w+")
_MAX_WORD = 1_000

Side = Literal["inputs", "outputs"]
Columns = Mapping[str, npt.NDArray[Any]]
Floats = npt.NDArray[np.float64]


class DescriptorDrift(BaseModel):
    """One descriptor of a text column: its means and the KS test of its two samples."""

    model_config = ConfigDict(frozen=True)

    descriptor: str
    reference_mean: float
    window_mean: float
    statistic: float
    p_value: float


class TextDrift(BaseModel):
    """The outcome of the descriptor tests on one text input or output."""

    model_config = ConfigDict(frozen=True)
    HEADERS: ClassVar[tuple[str, ...]] = (
        "column", "side", "rows", "chars", "words", "oov share", "non-ASCII", "p-value", "drift",
    )  # fmt: skip

    column: str
    side: Side
    window_rows: int = Field(description="window texts described")
    descriptors: tuple[DescriptorDrift, ...]
    p_value: float = Field(description="the smallest descriptor p-value times 4 (Bonferroni)")
    threshold: float = Field(default=ALPHA, description="alpha: drifted when p_value < it")
    drifted: bool

    @property
    def signal(self) -> float:
        """The alert signal `text_drift:<column>`: 1 - p-value (0.95 is alpha 0.05)."""
        return 1.0 - self.p_value

    def cells(self) -> tuple[str, ...]:
        """The row of a table under `HEADERS`: each descriptor's reference -> window mean."""
        means = [f"{d.reference_mean:.3g} -> {d.window_mean:.3g}" for d in self.descriptors]
        return (self.column, self.side, str(self.window_rows), *means,
                f"{self.p_value:.3g}", "yes" if self.drifted else "")  # fmt: skip


@dataclass(frozen=True)
class StoredText:
    """A text column's reference: its vocabulary and samples of each descriptor."""

    column: str
    side: Side
    vocabulary: frozenset[str]
    samples: dict[str, Floats]


def is_text(values: npt.NDArray[Any]) -> bool:
    """Whether a column holds text (see the module's docstring for the rule)."""
    if values.ndim != 1 or values.dtype.kind not in "OUT":
        return False
    sniffed = [value for value in values[: _SNIFFED * 2] if value is not None][:_SNIFFED]
    texts = [v for v in sniffed if isinstance(v, str) and len(v) >= MIN_CHARACTERS and _spaced(v)]
    return len(texts) >= 2 and 2 * len(texts) >= len(sniffed)


def reference_text(
    inputs: Columns, outputs: Columns, *, rows: int = STORED_ROWS, seed: int = 0
) -> list[StoredText]:
    """Vocabulary and descriptor samples of every text column among the flat columns."""
    rng = np.random.default_rng(seed)
    stored = []
    sides: tuple[tuple[Side, Columns], ...] = (("inputs", inputs), ("outputs", outputs))
    for side, columns in sides:
        for name, values in columns.items():
            if is_text(np.asarray(values)):
                texts = _texts(np.asarray(values), 2 * VOCABULARY, rng)
                half = len(texts) // 2
                vocabulary = _vocabulary(texts[:half])
                described = describe(texts[:rows], vocabulary)
                held_out = describe(texts[half:][:rows], vocabulary)["oov_share"]
                stored.append(StoredText(name, side, vocabulary,
                                         {**described, "oov_share": held_out}))  # fmt: skip
    return stored


def describe(texts: list[str], vocabulary: frozenset[str]) -> dict[str, Floats]:
    """The four descriptors of each text."""
    values = np.zeros((len(DESCRIPTORS), len(texts)))
    for index, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        unknown = sum(word not in vocabulary for word in words)
        non_ascii = len(text) - len(text.encode("ascii", "ignore"))
        values[:, index] = (len(text), len(words), unknown / max(len(words), 1),
                            non_ascii / max(len(text), 1))  # fmt: skip
    return dict(zip(DESCRIPTORS, values, strict=True))


def text_drift(
    reference: list[StoredText], inputs: Columns, outputs: Columns, *, seed: int = 0
) -> tuple[TextDrift, ...]:
    """KS tests of every stored text column's descriptors against the window's (a column the
    window lacks, or has no texts in, is left out)."""
    if not reference:
        return ()
    stats = require("scipy.stats", extra="monitor")
    drifts = []
    for stored in reference:
        values = (inputs if stored.side == "inputs" else outputs).get(stored.column)
        if values is None:
            continue
        texts = _texts(np.asarray(values), TESTED_ROWS, np.random.default_rng(seed))
        if not texts:
            continue
        window = describe(texts, stored.vocabulary)
        tests = []
        for name in DESCRIPTORS:
            result = stats.ks_2samp(stored.samples[name], window[name], method="asymp")
            tests.append(DescriptorDrift(
                descriptor=name, reference_mean=float(stored.samples[name].mean()),
                window_mean=float(window[name].mean()), statistic=float(result.statistic),
                p_value=float(result.pvalue),
            ))  # fmt: skip
        p_value = min(1.0, len(tests) * min(test.p_value for test in tests))
        drifts.append(TextDrift(column=stored.column, side=stored.side, window_rows=len(texts),
                                descriptors=tuple(tests), p_value=p_value,
                                drifted=p_value < ALPHA))  # fmt: skip
    return tuple(drifts)


def _spaced(text: str) -> bool:
    return any(character.isspace() for character in text)


def _texts(values: npt.NDArray[Any], rows: int, rng: np.random.Generator) -> list[str]:
    """Up to `rows` of the strings among `values` (nulls and non-strings left out), drawn
    uniformly, in random order."""
    kept = [value for value in values.tolist() if isinstance(value, str)]
    if len(kept) > rows:
        kept = [kept[i] for i in np.sort(rng.choice(len(kept), size=rows, replace=False))]
    return [kept[i] for i in rng.permutation(len(kept))]  # a reference's halves: at random


def _vocabulary(texts: Iterable[str]) -> frozenset[str]:
    counts = Counter(word for text in texts for word in _WORD.findall(text.lower()))
    return frozenset(word for word, _ in counts.most_common(VOCABULARY))


def write_text(folder: Path, columns: list[StoredText]) -> None:
    """Store the text columns' references in the version's `folder` (none: no file)."""
    entries = [
        {"name": c.column, "side": c.side, "vocabulary": sorted(c.vocabulary),
         "samples": {name: {"count": int(values.size), "values": encode_array(values, "<f8")}
                     for name, values in c.samples.items()}}
        for c in columns
    ]  # fmt: skip
    body = {"format": FORMAT, "columns": entries} if entries else None
    write_document(folder / REFERENCE_TEXT, body)


def read_text(folder: Path) -> list[StoredText]:
    """The text references stored with a version (none when it has no text column, or was
    registered before they were stored); `InvalidInput` for a damaged file."""
    path = folder / REFERENCE_TEXT
    return read_entries(path, FORMAT, "columns", _entry)


def _entry(entry: object) -> StoredText:
    side = side_of(entry)
    words = field(entry, "vocabulary", list)
    if len(words) > VOCABULARY or not all(
        isinstance(word, str) and len(word) <= _MAX_WORD for word in words
    ):
        raise DamagedFile(f"a vocabulary is not a list of at most {VOCABULARY} words")
    samples = field(entry, "samples", dict)
    if set(samples) != set(DESCRIPTORS):
        raise DamagedFile(f"the samples are not those of {', '.join(DESCRIPTORS)}")
    decoded = {}
    for name in DESCRIPTORS:
        count = bounded(samples[name], "count", 1, 10 * STORED_ROWS)
        decoded[name] = decode_array(field(samples[name], "values", str), "<f8", count)
    return StoredText(name_of(entry), side, frozenset(words), decoded)
