"""Monitoring's inputs: the reference stored with a version, and windows of the prediction log.

Columns are flat: a 2-D input `x` of width k becomes `x[0]` … `x[k-1]`, so a served array input
and a DataFrame compare column by column alike. The reference is written into the model's folder
at registration (`monitoring/reference_inputs.json`, `…_outputs.json`, and `…_embeddings.json`
and `…_text.json` when it has embeddings or text, `…_multivariate.json` with two or more
columns), so it is stored, deduped and fetched with the version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.monitoring._embeddings import reference_embeddings, write_embeddings
from modelyard.monitoring._log_lines import UnreadableLines, parse_record
from modelyard.monitoring._multivariate import write_multivariate
from modelyard.monitoring._profile import Profile, profile
from modelyard.monitoring._text import reference_text, write_text

REFERENCE_INPUTS = "monitoring/reference_inputs.json"
REFERENCE_OUTPUTS = "monitoring/reference_outputs.json"


def flat_columns(arrays: Mapping[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """1-D columns of named arrays: 2-D and wider arrays are split along their trailing axes."""
    flat: dict[str, np.ndarray[Any, Any]] = {}
    for name, values in arrays.items():
        array = np.asarray(values)
        if array.ndim <= 1:
            flat[name] = array.reshape(-1)
            continue
        matrix = array.reshape(array.shape[0], -1)
        for index in range(matrix.shape[1]):
            flat[f"{name}[{index}]"] = matrix[:, index]
    return flat


def write_reference(
    folder: Path, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> tuple[Profile, Profile]:
    """Profile a reference sample's inputs and the model's outputs for it into `folder`."""
    profiles = profile(flat_columns(inputs)), profile(flat_columns(outputs))
    for name, summary in zip((REFERENCE_INPUTS, REFERENCE_OUTPUTS), profiles, strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(summary.to_bytes())
    # Samples of embeddings and texts, for the tests that need more than a profile's columns.
    flat_inputs, flat_outputs = flat_columns(inputs), flat_columns(outputs)
    write_embeddings(folder, reference_embeddings(flat_inputs, flat_outputs))
    write_text(folder, reference_text(flat_inputs, flat_outputs))
    write_multivariate(folder, flat_inputs, profiles[0])  # PCA reconstruction, joint sample
    return profiles


def read_reference(folder: Path) -> tuple[Profile, Profile] | None:
    """The reference profiles stored with a version, or None when it has none."""
    if not (folder / REFERENCE_INPUTS).is_file():
        return None
    return (
        Profile.from_bytes((folder / REFERENCE_INPUTS).read_bytes()),
        Profile.from_bytes((folder / REFERENCE_OUTPUTS).read_bytes()),
    )


def read_window(
    root: Path, model: str, version: str, *, since: datetime, until: datetime
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, np.ndarray[Any, Any]], int]:
    """Inputs and outputs logged for a version between `since` and `until` (UTC), as flat
    columns, and how many requests they came from."""
    return window_columns(read_records(root, model, version, since=since, until=until))


def window_columns(
    records: Iterable[dict[str, Any]],
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, np.ndarray[Any, Any]], int]:
    """The inputs and outputs of prediction records as flat columns, and how many records."""
    inputs: dict[str, list[Any]] = {}
    outputs: dict[str, list[Any]] = {}
    requests = 0
    for record in records:
        requests += 1
        for name, values in record["inputs"].items():
            inputs.setdefault(name, []).append(log_array(values))
        for name, values in record["outputs"].items():
            outputs.setdefault(name, []).append(log_array(values))
    return _stack(inputs), _stack(outputs), requests


def log_array(values: Any) -> np.ndarray[Any, Any]:
    """`values` as an array; numbers among strings stay numbers (an object array), where
    np.asarray would silently make them all strings and hide the mismatch from the profile."""
    array = np.asarray(values)
    if array.dtype.kind in "US" and isinstance(values, list) and not _all_text(values):
        return np.array(values, dtype=object)
    return array


def _all_text(values: list[Any]) -> bool:
    return all(_all_text(v) if isinstance(v, list) else isinstance(v, str) for v in values)


def read_records(
    root: Path,
    model: str,
    version: str,
    *,
    since: datetime,
    until: datetime,
    unreadable: UnreadableLines | None = None,
) -> Iterator[dict[str, Any]]:
    """The prediction log's records for a version between `since` and `until`; a line that
    holds no valid record (cut short by a full disk, garbage) is skipped, and counted in
    `unreadable` when given."""
    tally = unreadable if unreadable is not None else UnreadableLines()
    folder = root / model / version
    day = since.date()
    while day <= until.date():
        file = folder / f"{day.isoformat()}.jsonl"
        if file.is_file():
            with open(file, "rb") as handle:
                for line in handle:
                    found = parse_record(line, tally)
                    if found is not None and since <= found[1] < until:
                        yield found[0]
        day += timedelta(days=1)


def _stack(columns: dict[str, list[Any]]) -> dict[str, np.ndarray[Any, Any]]:
    return flat_columns({name: _concatenate(parts) for name, parts in columns.items() if parts})


def _concatenate(parts: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    if len({part.dtype.kind in "USO" for part in parts}) > 1:  # strings beside numbers
        parts = [part.astype(object) for part in parts]
    return np.concatenate(parts)
