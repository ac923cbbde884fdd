"""A batch of prediction records sent by a serving replica to a registry server, checked before
anything is stored: the body comes from the network, so every field is checked for its type and
rebuilt in the log's own order (`id`, `model`, `version`, `time` first, as the scans expect).

>>> records, replica = parse_prediction_batch(body, model="fraud")
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from modelyard.errors import InvalidInput
from modelyard.monitoring._log_scan import stamp

MAX_RECORDS = 10_000
"""The most records one batch may hold (a replica sends at most `serve_log_buffer`'s batch)."""

_KEYS = frozenset({"id", "model", "version", "time", "latency_ms", "inputs", "outputs"})


def parse_prediction_batch(body: bytes, *, model: str) -> tuple[list[dict[str, Any]], str]:
    """The records of `{"replica": "host:pid", "records": [...]}`, every one of them for
    `model`, and the replica that sent them; `InvalidInput` names the first problem (and then
    none of the batch is stored)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"the prediction batch is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise InvalidInput('a prediction batch is {"replica": "...", "records": [...]}')
    items, replica = document["records"], document.get("replica", "")
    if not isinstance(replica, str) or len(replica) > 255:
        raise InvalidInput("the batch's replica is a string of at most 255 characters")
    if not items or len(items) > MAX_RECORDS:
        raise InvalidInput(f"a prediction batch holds 1 to {MAX_RECORDS} records")
    return [_record(index, item, model) for index, item in enumerate(items)], replica


def _record(index: int, item: Any, model: str) -> dict[str, Any]:
    where = f"record {index}"
    if not isinstance(item, dict) or not _KEYS.issuperset(item):
        raise InvalidInput(f"{where}: a record is an object with the keys {sorted(_KEYS)}")
    if item.get("model") != model:
        raise InvalidInput(f"{where}: its model is not {model!r}, the model the batch is for")
    request_id, version, latency = item.get("id"), item.get("version"), item.get("latency_ms", 0)
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 255:
        raise InvalidInput(f"{where}: id must be a string of 1 to 255 characters")
    if not isinstance(version, str) or not version.isdigit() or len(version) > 9:
        raise InvalidInput(f"{where}: version must be a version number as a string ('3')")
    if isinstance(latency, bool) or not isinstance(latency, int | float):
        raise InvalidInput(f"{where}: latency_ms must be a number")
    for side in ("inputs", "outputs"):
        if not isinstance(item.get(side), dict):
            raise InvalidInput(f"{where}: {side} must be an object of named arrays")
    return {
        "id": request_id, "model": model, "version": version, "time": _time(where, item),
        "latency_ms": latency, "inputs": item["inputs"], "outputs": item["outputs"],
    }  # fmt: skip


def _time(where: str, item: dict[str, Any]) -> str:
    """The record's time as the log writes it (UTC, to the millisecond)."""
    value = item.get("time")
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(f"{where}: time must be an ISO 8601 time with its UTC offset")
    return stamp(moment.astimezone(UTC))
