from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np

from modelyard.store._chunking import (
    CDC_MAX,
    CDC_THRESHOLD,
    HEADER,
    IN_MEMORY_LIMIT,
    cut_file,
    read_span,
    safetensors_spans,
)


def safetensors_bytes(
    tensors: dict[str, bytes], *, metadata: dict[str, str] | None = None
) -> bytes:
    header: dict[str, object] = {"__metadata__": metadata or {}}
    offset = 0
    for name, data in tensors.items():
        header[name] = {
            "dtype": "U8",
            "shape": [len(data)],
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(tensors.values())


def pieces_of(name: str, data: bytes) -> list[tuple[int, int, str | None, bytes | None]]:
    handle = io.BytesIO(data)
    return [
        (p.span.offset, p.span.size, p.span.name, p.data)
        for p in cut_file(Path(name), handle, len(data))  # type: ignore[arg-type]
    ]


def test_empty_file_has_no_pieces() -> None:
    assert pieces_of("empty.bin", b"") == []


def test_small_file_is_one_piece() -> None:
    assert pieces_of("config.json", b"{}") == [(0, 2, None, b"{}")]


def test_large_file_is_cut_by_content() -> None:
    data = np.random.default_rng(1).bytes(8 * CDC_THRESHOLD)
    pieces = pieces_of("weights.bin", data)
    assert b"".join(p[3] or b"" for p in pieces) == data
    assert all(size <= CDC_MAX for _, size, _, _ in pieces)
    assert 60 < len(pieces) < 250  # about 64 KiB on average


def test_content_defined_cuts_survive_an_insertion() -> None:
    data = np.random.default_rng(2).bytes(4 * CDC_THRESHOLD)
    shifted = data[:1000] + b"inserted" + data[1000:]
    before = {p[3] for p in pieces_of("a.bin", data)}
    after = {p[3] for p in pieces_of("a.bin", shifted)}
    assert len(before & after) >= len(before) - 2


def test_safetensors_cut_per_tensor() -> None:
    data = safetensors_bytes({"w": b"\x01" * 100, "b": b"\x02" * 10}, metadata={"k": "v"})
    pieces = pieces_of("model.safetensors", data)
    assert [p[2] for p in pieces] == [HEADER, "w", "b"]
    assert b"".join(p[3] or b"" for p in pieces) == data


def test_safetensors_changed_tensor_changes_one_piece() -> None:
    base = safetensors_bytes({"a": b"\x01" * 64, "b": b"\x02" * 64, "c": b"\x03" * 64})
    tuned = safetensors_bytes({"a": b"\x01" * 64, "b": b"\x09" * 64, "c": b"\x03" * 64})
    old, new = pieces_of("m.safetensors", base), pieces_of("m.safetensors", tuned)
    changed = [o[2] for o, n in zip(old, new, strict=True) if o[3] != n[3]]
    assert changed == ["b"]


def test_shared_and_empty_tensors_cover_every_byte() -> None:
    header = {
        "x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "alias": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "empty": {"dtype": "U8", "shape": [0], "data_offsets": [4, 4]},
        "y": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]},
    }
    encoded = json.dumps(header).encode()
    data = struct.pack("<Q", len(encoded)) + encoded + b"abcdXYef"
    pieces = pieces_of("m.safetensors", data)
    assert b"".join(p[3] or b"" for p in pieces) == data
    assert [p[2] for p in pieces] == [HEADER, "x", None, "y"]


def test_invalid_safetensors_falls_back_to_plain_bytes() -> None:
    for data in [
        b"short",
        struct.pack("<Q", 10**9) + b"{}",
        struct.pack("<Q", 4) + b"\xff\xfe{}",
        struct.pack("<Q", 2) + b"[]",
        struct.pack("<Q", 0),
        struct.pack("<Q", 20) + b'{"x": {"data_offsets": 1}}',
        struct.pack("<Q", 33) + b'{"x": {"data_offsets": [0, 99]}}',
    ]:
        pieces = pieces_of("bad.safetensors", data)
        assert [p[2] for p in pieces] == [None]
        assert b"".join(p[3] or b"" for p in pieces) == data


def test_huge_tensor_is_streamed_not_held() -> None:
    big = b"\x07" * (IN_MEMORY_LIMIT + 1)
    data = safetensors_bytes({"big": big})
    handle = io.BytesIO(data)
    spans = safetensors_spans(handle, len(data))  # type: ignore[arg-type]
    assert spans is not None
    pieces = list(cut_file(Path("m.safetensors"), handle, len(data)))  # type: ignore[arg-type]
    assert pieces[1].data is None
    assert b"".join(read_span(handle, pieces[1].span)) == big  # type: ignore[arg-type]


def test_read_span_of_a_truncated_file_fails() -> None:
    import pytest

    from modelyard.store._chunking import Span

    with pytest.raises(EOFError, match="3 bytes early"):
        list(read_span(io.BytesIO(b"abc"), Span(0, 6)))  # type: ignore[arg-type]
