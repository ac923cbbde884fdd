"""Fast reads of the prediction log for pages: which versions have traffic, how much, and a
bounded sample of each time window's records.

A day of traffic at a few requests a second is hundreds of thousands of lines, too many to
parse for one page. The log is appended in time order and every record starts
`{"id":…,"model":…,"version":…,"time":"<ISO, UTC, ms>"`, so a scan finds a line's time by
looking for it (not parsing the record), seeks to a start time by bisection, and parses only
the lines it keeps: a reservoir sample per window, and the lines whose request got feedback.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from modelyard.monitoring._log_lines import UnreadableLines, parse_record, parse_time

_TIME = b'"time":"'
_ID = b'{"id":"'
_STAMP = len("2026-01-01T00:00:00.000+00:00")
_CHUNK = 1 << 20

PROBE = 2000
"""Lines per window looked at for feedback (and sampled from for drift): all of a window's
lines up to this many, else this many at random."""


def stamp(moment: datetime) -> str:
    """A time as the log writes it (UTC, to the millisecond), so times compare as text."""
    return moment.isoformat(timespec="milliseconds")


def line_time(line: bytes) -> str | None:
    """The `time` of a log line, without parsing it; None when it has none."""
    at = line.find(_TIME, 0, 400)
    if at < 0:
        return None
    return line[at + len(_TIME) : at + len(_TIME) + _STAMP].decode("ascii", "replace")


def line_id(line: bytes) -> str | None:
    """The request id of a log line, without parsing it."""
    if not line.startswith(_ID):
        return None
    end = line.find(b'"', len(_ID))
    return line[len(_ID) : end].decode("utf-8", "replace") if end > 0 else None


def served_versions(root: Path) -> list[tuple[str, str]]:
    """(model, version) of every version with a prediction log under `root`."""
    found = []
    for model in sorted(os.listdir(root)) if root.is_dir() else ():
        folder = root / model
        for version in sorted(os.listdir(folder)) if folder.is_dir() else ():
            if (folder / version).is_dir():
                found.append((model, version))
    return found


def day_files(root: Path, model: str, version: str, since: datetime, until: datetime) -> list[Path]:
    """The log's day files that may hold records between `since` and `until`, oldest first."""
    files, day = [], since.date()
    while day <= until.date():
        path = root / model / version / f"{day.isoformat()}.jsonl"
        if path.is_file():
            files.append(path)
        day += timedelta(days=1)
    return files


def seek_time(handle: IO[bytes], size: int, since: str) -> int:
    """The offset of the first line at or after `since` (the end when none is): a bisection
    over offsets, then a few lines read."""
    low, high = 0, size
    while high - low > 4096:
        middle = (low + high) // 2
        handle.seek(middle)
        handle.readline()  # the rest of a line cut in two
        line = handle.readline()
        moment = line_time(line) if line else None
        if moment is None or moment >= since:
            high = middle
        else:
            low = middle
    handle.seek(low)
    if low:
        handle.readline()  # before `since`, as the bisection saw
    while True:
        offset = handle.tell()
        line = handle.readline()
        moment = line_time(line) if line else None
        if not line or (moment is not None and moment >= since):
            return offset


@dataclass
class Bucket:
    """One window of a scan: how many records it held, a sample of them, and the labelled."""

    requests: int = 0
    sample: list[bytes] = field(default_factory=list)
    labelled: list[bytes] = field(default_factory=list)


def scan_windows(
    root: Path,
    model: str,
    version: str,
    *,
    edges: Sequence[datetime],
    sample: int,
    labelled: Collection[str] = (),
) -> list[Bucket]:
    """One bucket per pair of `edges`: the window's request count, a sample of at most
    `sample` of its lines (seeded: the same page twice shows the same numbers) and the lines
    whose id is in `labelled` among up to `PROBE` of its lines. Each window's bytes are found
    by bisection and read once; lines are counted, not parsed, and picked at random offsets (a
    line's chance grows with its length, which varies little within one version's traffic)."""
    marks = [stamp(edge) for edge in edges]
    buckets = [Bucket() for _ in marks[1:]]
    rng = np.random.default_rng(0)
    wanted = {key.encode() for key in labelled}
    for path in day_files(root, model, version, edges[0], edges[-1]):
        size = path.stat().st_size
        with open(path, "rb") as handle:
            offsets = [seek_time(handle, size, mark) for mark in marks]
            for bucket, low, high in zip(buckets, offsets, offsets[1:], strict=False):
                if high > low:
                    handle.seek(low)
                    _fill(bucket, handle.read(high - low), sample, rng, wanted)
    for bucket in buckets:
        if len(bucket.sample) > sample:  # a window over two day files
            kept = sorted(rng.choice(len(bucket.sample), sample, replace=False))
            bucket.sample = [bucket.sample[i] for i in kept]
    return buckets


def _fill(
    bucket: Bucket, chunk: bytes, sample: int, rng: np.random.Generator, wanted: set[bytes]
) -> None:
    count = chunk.count(b"\n")
    bucket.requests += count
    if count <= PROBE:
        lines = [line for line in chunk.split(b"\n") if line]
    else:  # lines at random offsets: parsing all of a busy window would take seconds
        offsets = rng.integers(0, len(chunk), PROBE).tolist()
        starts = {chunk.rfind(b"\n", 0, offset) + 1 for offset in offsets}
        lines = [chunk[start : chunk.find(b"\n", start)] for start in sorted(starts)]
    keep_lines(bucket, lines, sample, rng, wanted)


def keep_lines(
    bucket: Bucket,
    lines: Sequence[bytes],
    sample: int,
    rng: np.random.Generator,
    wanted: set[bytes],
) -> None:
    """Add to `bucket` a seeded sample of at most `sample` of `lines` (a window's probed
    records), and those whose request id is in `wanted`."""
    if len(lines) > sample:
        kept = [lines[i] for i in sorted(rng.choice(len(lines), sample, replace=False))]
    else:
        kept = list(lines)
    bucket.sample.extend(kept)
    if wanted:
        bucket.labelled.extend(
            line for line in lines if line[len(_ID) : line.find(b'"', len(_ID))] in wanted
        )


def parse_lines(lines: Sequence[bytes]) -> tuple[list[dict[str, Any]], int]:
    """The records of log lines, and how many were damaged (skipped: see `parse_record`)."""
    unreadable = UnreadableLines()
    found = (parse_record(line, unreadable) for line in lines)
    records = [record for record, _ in filter(None, found)]
    return records, unreadable.count


def parse_outputs(lines: Sequence[bytes]) -> list[dict[str, Any]]:
    """`{"id", "outputs"}` of log lines, parsing only their ends (`outputs` is written last:
    the inputs, most of a line, are skipped); damaged lines are left out."""
    records = []
    for line in lines:
        at = line.rfind(b',"outputs":')
        try:
            tail = orjson.loads(b"{" + line[at + 1 :]) if at > 0 else orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        outputs = tail.get("outputs") if isinstance(tail, dict) else None
        if isinstance(outputs, dict) and all(isinstance(v, list) for v in outputs.values()):
            records.append({"id": line_id(line), "outputs": outputs})
    return records


@dataclass(frozen=True, slots=True)
class Activity:
    """How much traffic a version had: its last record's time, requests in the last hour and
    day."""

    last_seen: datetime | None
    last_hour: int
    last_day: int


def activity(root: Path, model: str, version: str, *, now: datetime) -> Activity:
    """A version's recent traffic, counted by newlines after a bisection (not parsed: a
    damaged line counts as a request; its last time is that of the last line whose time
    parses)."""
    hour, day = stamp(now - timedelta(hours=1)), stamp(now - timedelta(days=1))
    last_hour = last_day = 0
    last_seen: str | None = None
    for path in day_files(root, model, version, now - timedelta(days=1), now):
        size = path.stat().st_size
        with open(path, "rb") as handle:
            last_day += _count_from(handle, seek_time(handle, size, day))
            last_hour += _count_from(handle, seek_time(handle, size, hour))
            last_seen = _last_time(handle, size) or last_seen
    if last_seen is None:  # nothing in a day: look for the newest file
        last_seen = _newest(root / model / version)
    return Activity(parse_time(last_seen), last_hour, last_day)


def _count_from(handle: IO[bytes], offset: int) -> int:
    handle.seek(offset)
    count = 0
    while chunk := handle.read(_CHUNK):
        count += chunk.count(b"\n")
    return count


def _last_time(handle: IO[bytes], size: int) -> str | None:
    handle.seek(max(0, size - 65536))
    for line in reversed(handle.read().splitlines()):
        moment = line_time(line)
        if moment is not None and parse_time(moment) is not None:  # not a cut line's
            return moment
    return None


def _newest(folder: Path) -> str | None:
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        return None
    with open(files[-1], "rb") as handle:
        return _last_time(handle, files[-1].stat().st_size)
