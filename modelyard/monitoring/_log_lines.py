"""The JSON-lines logs (predictions, feedback) as bytes in a file: appended so that a short
write cannot glue two records together, and read so that a damaged line is skipped and counted,
never raised.

A full disk (ENOSPC), a file size limit (EFBIG) or a process killed mid-write can leave a record
cut short, without its newline. Appending the next batch after it would glue that batch's first
record onto the cut one, and the line would stay unreadable in every window over that day.
`append_lines` looks at the file's last byte before each batch (one `pread`) and, when the last
write was cut, starts the batch on a line of its own: the cut record is lost, the next one is
whole.

A reader takes each line apart without trusting it (`parse_record`): bad JSON, anything but an
object, a missing or ill-typed field, or a time that does not parse (or has no UTC offset) make
the line unreadable: skipped and counted in an `UnreadableLines`. A line that is a cut record
glued to a whole one (written before this check existed) still gives the whole one back.

>>> unreadable = UnreadableLines()
>>> records = list(store.read_records("fraud", "3", since=start, until=end, unreadable=unreadable))
>>> unreadable.count
0
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

Record = dict[str, Any]

_START = b'{"id":'
"""How every prediction record begins (the id first, as `encode_record` writes it)."""

_RETRIES = 8
"""The most record starts tried in one damaged line (each try is one parse)."""


@dataclass
class UnreadableLines:
    """How many log lines a read skipped because they hold no valid record. A reader adds to
    it as it goes: the count of a lazy reader is complete once the reader is exhausted."""

    count: int = 0

    def add(self, lines: int = 1) -> None:
        """Count `lines` more skipped lines."""
        self.count += lines


def append_lines(path: Path, data: bytes) -> None:
    """Append `data` (whole lines) to `path`, created if missing, starting on a fresh line if
    the last write to it was cut short; an `OSError` (a full disk) leaves at most the end of
    `data` cut, which the next append starts after."""
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(descriptor).st_size
        if size and os.pread(descriptor, 1, size - 1) != b"\n":
            data = b"\n" + data  # the cut record ends here, on a line of its own
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)  # appends whole unless the disk fills
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            view = view[written:]
    finally:
        os.close(descriptor)


def parse_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object of a line, or None when it is not one."""
    try:
        value = orjson.loads(line)
    except ValueError:  # orjson.JSONDecodeError: bad JSON, bad UTF-8, nested too deep
        return None
    return value if isinstance(value, dict) else None


def parse_time(value: object) -> datetime | None:
    """A record's `time` (ISO 8601 with its UTC offset), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def parse_record(line: bytes, unreadable: UnreadableLines) -> tuple[Record, datetime] | None:
    """The prediction record of a log line and its time; None for a blank line, and for a line
    that holds no valid record (counted in `unreadable`). A line where a cut record and a whole
    one were glued together gives the whole one (and counts as unreadable all the same)."""
    found = _record(line)
    if found is not None:
        return found
    if not line.strip():
        return None
    unreadable.add()
    at = line.find(_START, 1)
    for _ in range(_RETRIES):
        if at < 0:
            return None
        found = _record(line[at:])
        if found is not None:
            return found
        at = line.find(_START, at + 1)
    return None


def _record(line: bytes) -> tuple[Record, datetime] | None:
    record = parse_object(line)
    if record is None or not isinstance(record.get("id"), str | None):
        return None
    moment = parse_time(record.get("time"))
    if moment is None or not (_arrays(record.get("inputs")) and _arrays(record.get("outputs"))):
        return None
    return record, moment


def _arrays(value: object) -> bool:
    """Whether `value` is an object of named arrays (lists), as records hold inputs and outputs."""
    return isinstance(value, dict) and all(isinstance(v, list) for v in value.values())
