"""Labels that arrive after the prediction (feedback), and the real performance they give.

Feedback names the request it is about by the `id` the server returned; a request of several
rows gets a list of labels, one per row. It is stored as JSON lines under
`<home>/feedback/<model>/<day>.jsonl` and joined with the prediction log by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelyard.errors import InvalidInput
from modelyard.monitoring._log_lines import UnreadableLines, append_lines, parse_object, parse_time


def parse_feedback(body: bytes) -> list[dict[str, Any]]:
    """`{"id": ..., "label": ...}` or `{"feedback": [...]}` as records; `InvalidInput` names
    what is wrong."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"the feedback body is not valid JSON: {error}") from None
    items = document.get("feedback", [document]) if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidInput('feedback must be {"id": ..., "label": ...} or {"feedback": [...]}')
    records = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or "label" not in item:
            raise InvalidInput(f"feedback item {index} needs a string id and a label")
        if not _label(item["label"]):
            raise InvalidInput(
                f"feedback item {index}: a label is a number, string or boolean, or a flat list "
                "of them (one per row)"
            )
        records.append({"id": item["id"], "label": item["label"]})
    return records


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def write_feedback(root: Path, model: str, records: Sequence[dict[str, Any]]) -> None:
    """Append feedback records for `model`, stamped with the time they arrived (one write:
    concurrent writers never interleave a line, and a full disk never merges two)."""
    now = datetime.now(UTC)
    folder = root / model
    folder.mkdir(parents=True, exist_ok=True)
    lines = b"".join(
        orjson.dumps({**record, "time": now.isoformat(timespec="milliseconds")}) + b"\n"
        for record in records
    )
    append_lines(folder / f"{now.date().isoformat()}.jsonl", lines)


def read_feedback(
    root: Path, model: str, *, since: datetime, unreadable: UnreadableLines | None = None
) -> dict[str, Any]:
    """Labels by request id, from feedback that arrived since `since` (the latest wins); a line
    that holds no valid feedback is skipped, and counted in `unreadable` when given."""
    tally = unreadable if unreadable is not None else UnreadableLines()
    labels: dict[str, Any] = {}
    day = since.date()
    while day <= datetime.now(UTC).date():
        file = root / model / f"{day.isoformat()}.jsonl"
        if file.is_file():
            for line in file.read_bytes().splitlines():
                found = feedback_label(line, tally)
                if found is not None:
                    labels[found[0]] = found[1]
        day += timedelta(days=1)
    return labels


def feedback_label(line: bytes, unreadable: UnreadableLines) -> tuple[str, Any] | None:
    """(request id, label) of a stored feedback line; None for a blank line and for one that
    holds no valid feedback (counted in `unreadable`)."""
    record = parse_object(line)
    if record is not None and isinstance(record.get("id"), str) and _label(record.get("label")):
        if parse_time(record.get("time")) is not None:
            return record["id"], record["label"]
    if line.strip():
        unreadable.add()
    return None


def _label(value: Any) -> bool:
    return _scalar(value) or (isinstance(value, list) and all(map(_scalar, value)))


def labelled_rows(
    records: Iterable[dict[str, Any]], labels: dict[str, Any], output: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(predictions, labels) for every logged row whose request got feedback."""
    predicted: list[Any] = []
    truth: list[Any] = []
    for record in records:
        label = labels.get(record.get("id") or "")
        if label is None or output not in record["outputs"]:
            continue
        values = np.asarray(record["outputs"][output])
        given = np.asarray(label).reshape(-1)
        if len(given) != len(values):
            continue  # a label count that does not match the rows cannot be joined
        predicted.append(values)
        truth.append(given)
    if not predicted:
        return np.array([]), np.array([])
    return np.concatenate(predicted), np.concatenate(truth)
