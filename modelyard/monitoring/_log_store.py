"""Where the prediction log and feedback are kept: the seam between the writers (serving, the
registry server, `Yard.log_feedback`) and the readers (reports, alert rules, the pages).

Two stores implement `PredictionStore`:

- `FileLogStore`, the embedded default: JSON lines under `<home>/predictions/<model>/<version>/
  <day>.jsonl` and `<home>/feedback/<model>/<day>.jsonl`, read by bisection (`_log_scan`);
- `DatabaseLogStore`, on the registry's database when it is PostgreSQL: every replica and
  server writes the same tables, so any reader sees the whole window, and each row names the
  replica (`hostname:pid`) that wrote it.

A client of a remote server writes through a `PredictionWriter` (only the writing half), and
asks the server for reports.

>>> store = FileLogStore(home / "predictions", home / "feedback")
>>> store.write([record])
>>> list(store.read_records("fraud", "3", since=start, until=end))
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from modelyard.errors import ConfigurationError
from modelyard.monitoring import _log_scan
from modelyard.monitoring._feedback import feedback_label, read_feedback, write_feedback
from modelyard.monitoring._log_lines import UnreadableLines, append_lines, parse_record
from modelyard.monitoring._log_scan import PROBE, Activity, Bucket, keep_lines
from modelyard.monitoring._windows import read_records
from modelyard.registry import (
    Database,
    FeedbackRow,
    PredictionRow,
    count_predictions,
    insert_feedback,
    insert_predictions,
    last_prediction,
    predicted_versions,
    read_feedback_rows,
    read_predictions,
)

Record = dict[str, Any]


def replica_id() -> str:
    """This process as a writer of the log: `hostname:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PredictionWriter(Protocol):
    """The writing half of the log: what serving and `Yard.log_feedback` need."""

    def write(self, records: Sequence[Record], *, replica: str | None = None) -> None:
        """Store a batch of prediction records (written by `replica`: this process if None)."""
        ...

    def write_feedback(self, model: str, records: Sequence[Record]) -> None:
        """Store feedback records (`{"id", "label"}`) for `model`, stamped with the time now."""
        ...


class PredictionStore(PredictionWriter, Protocol):
    """The prediction log and feedback, written by serving and read by monitoring."""

    def read_records(
        self,
        model: str,
        version: str,
        *,
        since: datetime,
        until: datetime,
        unreadable: UnreadableLines | None = None,
    ) -> Iterator[Record]:
        """A version's records in [since, until), oldest first; a line (or row) that holds no
        valid record is skipped, and counted in `unreadable` when given."""
        ...

    def read_feedback(
        self, model: str, *, since: datetime, unreadable: UnreadableLines | None = None
    ) -> dict[str, Any]:
        """Labels by request id of the feedback that arrived since `since` (the latest wins);
        unreadable lines are skipped, and counted in `unreadable` when given."""
        ...

    def replicas(self, model: str, version: str, *, since: datetime, until: datetime) -> int | None:
        """How many replicas wrote a version's records in [since, until); None if unknown."""
        ...

    def served_versions(self) -> list[tuple[str, str]]:
        """(model, version) of every version with logged records, sorted."""
        ...

    def activity(self, model: str, version: str, *, now: datetime) -> Activity:
        """A version's recent traffic."""
        ...

    def scan_windows(
        self,
        model: str,
        version: str,
        *,
        edges: Sequence[datetime],
        sample: int,
        labelled: Collection[str] = (),
    ) -> list[Bucket]:
        """One bucket per pair of `edges` (see `_log_scan.scan_windows`)."""
        ...


def store_or_files(
    store: PredictionStore | None, predictions: Path | None, feedback: Path | None
) -> PredictionStore:
    """`store`, else the files under `predictions` (and `feedback`: None reads no labels)."""
    if store is not None:
        return store
    if predictions is None:
        raise ConfigurationError("read the prediction log from a store or a predictions folder")
    return FileLogStore(predictions, feedback)


def encode_record(record: Record) -> bytes:
    """A prediction record as the log stores it: one line of JSON (NumPy arrays as lists)."""
    return orjson.dumps(record, default=_text, option=orjson.OPT_SERIALIZE_NUMPY)


def _text(value: object) -> str:
    """What JSON cannot hold as it is (a BYTES element sent as raw bytes), as text, so one
    such value does not lose the other records written with it."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def write_log_lines(root: Path, records: Sequence[Record]) -> None:
    """Append records as JSON lines under `root`, one file per model version and UTC day; an
    `OSError` (a full disk) may cut the last record written, never merge two (`append_lines`)."""
    files: dict[Path, list[bytes]] = {}
    for record in records:
        day = record["time"][:10]
        path = root / record["model"] / record["version"] / f"{day}.jsonl"
        files.setdefault(path, []).append(encode_record(record) + b"\n")
    for path, lines in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        append_lines(path, b"".join(lines))  # one write per batch: lines stay whole


class FileLogStore:
    """The log as JSON-lines files under a home (one process, or replicas sharing a folder)."""

    def __init__(self, predictions: Path, feedback: Path | None) -> None:
        self.predictions = predictions
        self.feedback = feedback  # None: a log without feedback (reads find no labels)

    def write(self, records: Sequence[Record], *, replica: str | None = None) -> None:
        write_log_lines(self.predictions, records)

    def write_feedback(self, model: str, records: Sequence[Record]) -> None:
        if self.feedback is None:
            raise ConfigurationError("this prediction log keeps no feedback")
        write_feedback(self.feedback, model, records)

    def read_records(
        self,
        model: str,
        version: str,
        *,
        since: datetime,
        until: datetime,
        unreadable: UnreadableLines | None = None,
    ) -> Iterator[Record]:
        return read_records(self.predictions, model, version, since=since, until=until,
                            unreadable=unreadable)  # fmt: skip

    def read_feedback(
        self, model: str, *, since: datetime, unreadable: UnreadableLines | None = None
    ) -> dict[str, Any]:
        if self.feedback is None:
            return {}
        return read_feedback(self.feedback, model, since=since, unreadable=unreadable)

    def replicas(self, model: str, version: str, *, since: datetime, until: datetime) -> int | None:
        return None  # lines do not say who wrote them

    def served_versions(self) -> list[tuple[str, str]]:
        return _log_scan.served_versions(self.predictions)

    def activity(self, model: str, version: str, *, now: datetime) -> Activity:
        return _log_scan.activity(self.predictions, model, version, now=now)

    def scan_windows(
        self,
        model: str,
        version: str,
        *,
        edges: Sequence[datetime],
        sample: int,
        labelled: Collection[str] = (),
    ) -> list[Bucket]:
        return _log_scan.scan_windows(self.predictions, model, version, edges=edges,
                                      sample=sample, labelled=labelled)  # fmt: skip


class DatabaseLogStore:
    """The log in the registry's database, shared by every replica and server that uses it."""

    def __init__(self, database: Database, *, replica: str | None = None) -> None:
        self.database = database
        self.replica = replica or replica_id()

    def write(self, records: Sequence[Record], *, replica: str | None = None) -> None:
        rows = [
            PredictionRow(model=r["model"], version=r["version"],
                          time=datetime.fromisoformat(r["time"]), request_id=str(r.get("id") or ""),
                          record=encode_record(r))
            for r in records
        ]  # fmt: skip
        insert_predictions(self.database, rows, replica=replica or self.replica)

    def write_feedback(self, model: str, records: Sequence[Record]) -> None:
        now = datetime.now(UTC)
        stamp = _log_scan.stamp(now)
        rows = [
            FeedbackRow(model=model, time=now, request_id=str(r["id"]),
                        record=orjson.dumps({**r, "time": stamp}))
            for r in records
        ]  # fmt: skip
        insert_feedback(self.database, rows)

    def read_records(
        self,
        model: str,
        version: str,
        *,
        since: datetime,
        until: datetime,
        unreadable: UnreadableLines | None = None,
    ) -> Iterator[Record]:
        tally = unreadable if unreadable is not None else UnreadableLines()
        lines = read_predictions(self.database, model, version, since=since, until=until)
        found = (parse_record(line, tally) for line in lines)
        return iter([record for record, _ in filter(None, found)])  # counted now, not later

    def read_feedback(
        self, model: str, *, since: datetime, unreadable: UnreadableLines | None = None
    ) -> dict[str, Any]:
        tally = unreadable if unreadable is not None else UnreadableLines()
        labels: dict[str, Any] = {}
        for line in read_feedback_rows(self.database, model, since=since):
            found = feedback_label(line, tally)
            if found is not None:
                labels[found[0]] = found[1]
        return labels

    def replicas(self, model: str, version: str, *, since: datetime, until: datetime) -> int | None:
        return count_predictions(self.database, model, version, since=since, until=until).replicas

    def served_versions(self) -> list[tuple[str, str]]:
        return predicted_versions(self.database)

    def activity(self, model: str, version: str, *, now: datetime) -> Activity:
        def count(since: datetime) -> int:
            found = count_predictions(self.database, model, version, since=since, until=now)
            return found.requests

        last = last_prediction(self.database, model, version)
        if last is not None and last.tzinfo is None:  # SQLite keeps no zone: it was UTC
            last = last.replace(tzinfo=UTC)
        return Activity(last, count(now - timedelta(hours=1)), count(now - timedelta(days=1)))

    def scan_windows(
        self,
        model: str,
        version: str,
        *,
        edges: Sequence[datetime],
        sample: int,
        labelled: Collection[str] = (),
    ) -> list[Bucket]:
        rng = np.random.default_rng(0)
        wanted = {key.encode() for key in labelled}
        buckets = []
        for since, until in zip(edges, edges[1:], strict=False):
            bucket = Bucket()
            bucket.requests = count_predictions(
                self.database, model, version, since=since, until=until
            ).requests
            if bucket.requests:
                share = min(1.0, PROBE / bucket.requests)
                lines = read_predictions(self.database, model, version, since=since,
                                         until=until, share=share)  # fmt: skip
                keep_lines(bucket, lines, sample, rng, wanted)
            buckets.append(bucket)
        return buckets
