"""Monitoring of a `modelyard server` over HTTP: the prediction log and feedback sent to it, and
reports computed by it, where the log of every replica is.

`HttpPredictionLog` is a `PredictionWriter` (what serving and `Yard.log_feedback` need): a
replica serving from `MODELYARD_URL` sends its batches here. A report is asked of the server
(`GET /api/v1/monitor`), which reads the whole window next to the data rather than sending it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from modelyard.monitoring import MonitorReport, encode_record, replica_id

if TYPE_CHECKING:
    from modelyard._remote import HttpRegistry

BATCH_BYTES = 4 << 20
"""Records are sent in requests of about this many bytes at most (well under the server's
body limit, 64 MiB by default)."""


class HttpPredictionLog:
    """The prediction log and feedback of a `modelyard server` (the editor role on the model
    is needed to write)."""

    def __init__(self, registry: HttpRegistry, *, replica: str | None = None) -> None:
        self.registry = registry
        self.replica = replica or replica_id()

    def write(self, records: Sequence[dict[str, Any]], *, replica: str | None = None) -> None:
        by_model: dict[str, list[bytes]] = {}
        for record in records:
            by_model.setdefault(record["model"], []).append(encode_record(record))
        head = b'{"replica":' + orjson.dumps(replica or self.replica) + b',"records":['
        for model, lines in by_model.items():
            for chunk in _chunks(lines):
                self.registry._send(
                    "POST", f"/models/{quote(model, safe='')}/predictions",
                    content=head + b",".join(chunk) + b"]}",
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip

    def write_feedback(self, model: str, records: Sequence[dict[str, Any]]) -> None:
        self.registry._send("POST", f"/models/{quote(model, safe='')}/feedback",
                            json={"feedback": list(records)})  # fmt: skip

    def report(
        self,
        ref: str,
        *,
        window: timedelta,
        until: datetime | None = None,
        segment: str | None = None,
        domain_classifier: bool = False,
    ) -> MonitorReport:
        """The server's report on `ref`'s last `window` (before `until`), per value of the
        input column `segment` too when given."""
        params = _params(ref, window, until, segment, domain_classifier)
        content = self.registry._send("GET", "/monitor", params=params).content
        return MonitorReport.model_validate_json(content)

    def page(
        self,
        ref: str,
        *,
        window: timedelta,
        until: datetime | None = None,
        segment: str | None = None,
        domain_classifier: bool = False,
    ) -> str:
        """The same report as a self-contained HTML page."""
        params = {**_params(ref, window, until, segment, domain_classifier), "format": "html"}
        return self.registry._send("GET", "/monitor", params=params).text


def _params(
    ref: str,
    window: timedelta,
    until: datetime | None,
    segment: str | None,
    domain_classifier: bool = False,
) -> dict[str, str]:
    params = {"ref": ref, "window_seconds": str(window.total_seconds())}
    if until is not None:
        params["until"] = until.isoformat()
    if segment is not None:
        params["segment"] = segment
    if domain_classifier:
        params["domain_classifier"] = "true"
    return params


def _chunks(lines: list[bytes]) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    size = 0
    for line in lines:
        if chunks[-1] and size + len(line) > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    return chunks
