"""Monitoring's inputs: the reference stored with a version, and windows of the prediction log.

Columns are flat: a 2-D input `x` of width k becomes `x[0]` … `x[k-1]`, so a served array input
and a DataFrame compare column by column alike. The reference is written into the model's folder
at registration (`monitoring/reference_inputs.json`, `…_outputs.json`), so it is stored, deduped
and fetched with the version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelyard.monitoring._profile import Profile, profile

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
            inputs.setdefault(name, []).append(np.asarray(values))
        for name, values in record["outputs"].items():
            outputs.setdefault(name, []).append(np.asarray(values))
    return _stack(inputs), _stack(outputs), requests


def read_records(
    root: Path, model: str, version: str, *, since: datetime, until: datetime
) -> Iterator[dict[str, Any]]:
    """The prediction log's records for a version between `since` and `until`."""
    folder = root / model / version
    day = since.date()
    while day <= until.date():
        file = folder / f"{day.isoformat()}.jsonl"
        if file.is_file():
            with open(file, "rb") as handle:
                for line in handle:
                    record = orjson.loads(line)
                    if since <= datetime.fromisoformat(record["time"]) < until:
                        yield record
        day += timedelta(days=1)


def _stack(columns: dict[str, list[Any]]) -> dict[str, np.ndarray[Any, Any]]:
    return flat_columns({name: np.concatenate(parts) for name, parts in columns.items() if parts})
