"""JSON files of reference samples stored with a version (embeddings, text descriptors): arrays
as base64 of their little-endian bytes, read back with every field checked.

A version's files are untrusted (anyone who can register a version wrote them), so reading one
never runs code (no pickle) and a damaged or crafted file gives `InvalidInput` naming the
file, never a raw exception or an allocation the file's size does not pay for.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import numpy.typing as npt
import orjson

from modelyard.errors import InvalidInput

T = TypeVar("T")

MAX_FILE_BYTES = 256 * 2**20
"""A reference file larger than this is refused unread."""


class DamagedFile(ValueError):
    """A field of a reference file that is missing, of the wrong type or out of range."""


def encode_array(values: npt.NDArray[Any], dtype: str) -> str:
    """`values` as base64 of their bytes in `dtype` (`<f4`, `<f8`)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def decode_array(encoded: object, dtype: str, count: int) -> npt.NDArray[Any]:
    """The `count` finite numbers that `encode_array` wrote in `dtype`."""
    if not isinstance(encoded, str):
        raise DamagedFile("an array is not a base64 string")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise DamagedFile("an array is not valid base64") from None
    size = np.dtype(dtype).itemsize
    if len(raw) != count * size:
        raise DamagedFile(f"an array holds {len(raw) // size} numbers where {count} were stated")
    values = np.frombuffer(raw, dtype).copy()
    if not np.isfinite(values).all():
        raise DamagedFile("an array holds NaN or infinite numbers")
    return values


def field(entry: object, key: str, kind: type | tuple[type, ...]) -> Any:
    """`entry[key]`, which must be of `kind` (a bool is never an int here)."""
    if not isinstance(entry, dict) or key not in entry:
        raise DamagedFile(f"an entry has no {key!r}")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise DamagedFile(f"{key!r} is {type(value).__name__}, not {kind}")
    return value


def bounded(entry: object, key: str, low: int, high: int) -> int:
    """The integer `entry[key]`, between `low` and `high`."""
    value: int = field(entry, key, int)
    if not low <= value <= high:
        raise DamagedFile(f"{key!r} is {value}, outside {low}..{high}")
    return value


def positive(entry: object, key: str) -> float:
    """The finite, positive number `entry[key]`."""
    value = float(field(entry, key, (int, float)))
    if not (math.isfinite(value) and value > 0):
        raise DamagedFile(f"{key!r} is {value}, not a positive finite number")
    return value


def name_of(entry: object, key: str = "name") -> str:
    """A column or input name: a non-empty string of at most 1,000 characters."""
    value: str = field(entry, key, str)
    if not 0 < len(value) <= 1000:
        raise DamagedFile(f"{key!r} is empty or longer than 1,000 characters")
    return value


def write_document(path: Path, body: dict[str, Any] | None) -> None:
    """Write `body` as JSON at `path`, or remove `path` when there is nothing to store (a folder
    copied from another version must not keep that version's samples)."""
    if body is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(body))


def read_document(path: Path, form: str) -> dict[str, Any] | None:
    """The JSON object at `path` whose `format` is `form`, or None when there is no file."""
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_FILE_BYTES} bytes: not a reference file")
    try:
        body = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"cannot read {path}: not JSON ({error})") from None
    if not isinstance(body, dict) or body.get("format") != form:
        raise InvalidInput(f"cannot read {path}: not a {form} file")
    return body


def damaged(path: Path, error: DamagedFile) -> InvalidInput:
    """The error for a reference file with a bad field."""
    return InvalidInput(f"cannot read {path}: {error}")


def read_entries(path: Path, form: str, key: str, parse: Callable[[object], T]) -> list[T]:
    """Each entry of the list `key` in the document at `path`, read by `parse` (none when there
    is no file); `InvalidInput` naming the file when an entry is damaged."""
    body = read_document(path, form)
    if body is None:
        return []
    try:
        return [parse(entry) for entry in field(body, key, list)]
    except DamagedFile as error:
        raise damaged(path, error) from None


def side_of(entry: object) -> Literal["inputs", "outputs"]:
    """The entry's `side`, which must be inputs or outputs."""
    side = field(entry, "side", str)
    if side not in ("inputs", "outputs"):
        raise DamagedFile(f"'side' is {side!r}, not inputs or outputs")
    return cast(Literal["inputs", "outputs"], side)
