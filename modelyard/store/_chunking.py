"""How a file is cut into blobs so that near-identical files share most of them.

- `.safetensors`: the header is one piece and each tensor's bytes another, so a fine-tuned model
  that changes a few tensors stores only those tensors again.
- other files over `CDC_THRESHOLD`: content-defined chunks (FastCDC, about 64 KiB on average), so an
  insertion shifts only the chunks around it.
- smaller files: one piece.

Cutting only reads, through a handle (not a mapping: a source truncated while it is read must
fail a put, not kill the process with SIGBUS); storing the pieces is the caller's job.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyfastcdc import FastCDC

from modelyard.store._protocol import READ_SIZE

CDC_THRESHOLD = 1 << 20
"""Files larger than this are cut by content; smaller ones are stored whole."""

CDC_MIN, CDC_AVG, CDC_MAX = 16 << 10, 48 << 10, 256 << 10
"""FastCDC bounds; the realised mean is about `CDC_MIN + CDC_AVG`, i.e. 64 KiB."""

IN_MEMORY_LIMIT = 16 << 20
"""A piece up to this size is read into memory; a larger one (a big tensor) is streamed."""

HEADER = "__header__"


@dataclass(frozen=True, slots=True)
class Span:
    """A byte range of a file that becomes one blob; `name` is the tensor it holds, if any."""

    offset: int
    size: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Piece:
    """One cut of a file: its bytes (`data`, a view into a mapped file or bytes read), or only
    a `span` too large to hold at once."""

    span: Span
    data: bytes | memoryview | None


def cut_file(path: Path, handle: BinaryIO, size: int) -> Iterator[Piece]:
    """Yield the pieces of the open file `handle`, in order, covering every byte exactly once."""
    if size == 0:
        return
    if path.suffix == ".safetensors":
        spans = safetensors_spans(handle, size)
        if spans is not None:
            yield from _read_spans(handle, spans)
            return
    handle.seek(0)
    if size <= CDC_THRESHOLD:
        yield Piece(Span(0, size), handle.read())
        return
    for chunk in _chunker().cut_stream(handle):
        # The chunker reuses its buffer: copy before asking for the next chunk.
        yield Piece(Span(chunk.offset, chunk.length), bytes(chunk.data))


def _chunker() -> FastCDC:
    # Changing these parameters moves every cut point: stores would stop deduplicating.
    return FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)


def safetensors_spans(handle: BinaryIO, size: int) -> list[Span] | None:
    """Header and per-tensor spans of a safetensors file; None if it is not a valid one."""

    def read(offset: int, length: int) -> bytes:
        handle.seek(offset)
        return handle.read(length)

    return _spans(read, size)


def _spans(read: Callable[[int, int], bytes], size: int) -> list[Span] | None:
    prefix = read(0, 8)
    if len(prefix) < 8:
        return None
    (header_len,) = struct.unpack("<Q", prefix)
    if header_len == 0 or 8 + header_len > size or header_len > 100 << 20:
        return None
    try:
        header = json.loads(read(8, header_len))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    start, data_len = 8 + header_len, size - 8 - header_len
    ranges = _tensor_ranges(header, data_len)
    if ranges is None:
        return None
    return [Span(0, start, HEADER), *_cover(ranges, start, data_len)]


def _tensor_ranges(header: dict[str, object], data_len: int) -> dict[tuple[int, int], str] | None:
    ranges: dict[tuple[int, int], str] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            return None
        begin, end = offsets
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= data_len):
            return None
        ranges.setdefault((begin, end), name)
    return ranges


def _cover(ranges: dict[tuple[int, int], str], start: int, data_len: int) -> Iterator[Span]:
    """Spans between consecutive cut points, named where they are exactly one tensor."""
    cuts = sorted({0, data_len, *(point for bounds in ranges for point in bounds)})
    for begin, end in zip(cuts, cuts[1:], strict=False):
        yield Span(start + begin, end - begin, ranges.get((begin, end)))


def _read_spans(handle: BinaryIO, spans: list[Span]) -> Iterator[Piece]:
    for span in spans:
        if span.size <= IN_MEMORY_LIMIT:
            handle.seek(span.offset)
            yield Piece(span, handle.read(span.size))
        else:
            yield Piece(span, None)


def read_span(handle: BinaryIO, span: Span) -> Iterator[bytes]:
    """Stream a span of the file in bounded pieces."""
    handle.seek(span.offset)
    remaining = span.size
    while remaining:
        piece = handle.read(min(READ_SIZE, remaining))
        if not piece:
            raise EOFError(f"file ended {remaining} bytes early")
        remaining -= len(piece)
        yield piece
