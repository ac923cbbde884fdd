"""Whether a pulled manifest's tensor names tell the truth, so it can be registered as it is.

A modelyard manifest names the tensor each safetensors chunk holds (`diff` reports changes by
those names). A pulled manifest comes from the registry: its blobs are verified, but its names
are only claims. This re-derives them from the file's own header (the header chunk, a few KiB)
the way `store_directory` cuts safetensors files, and accepts the manifest only when every name,
offset and size agrees. Anything unusual answers False: the caller then restores the folder and
logs it afresh, which derives every name from the bytes.
"""

from __future__ import annotations

import json
import struct

from modelyard.store import BlobStore, Chunk, Entry, Manifest, read_bytes

HEADER = "__header__"
"""The name `store_directory` gives a safetensors file's header chunk."""

HEADER_LIMIT = 100 << 20
"""The largest header `store_directory` cuts by tensors (larger: content-defined chunks)."""


def names_are_true(store: BlobStore, manifest: Manifest) -> bool:
    """Whether every named chunk of `manifest` is the tensor its file's header says it is.

    >>> names_are_true(store, load_manifest(store, pulled.manifest_digest))
    True
    """
    return all(_entry_ok(store, entry) for entry in manifest.entries)


def _entry_ok(store: BlobStore, entry: Entry) -> bool:
    named = any(chunk.name is not None for chunk in entry.chunks)
    if not named:
        return True  # boundaries without names only decide what deduplicates
    if entry.type != "file" or not entry.path.endswith(".safetensors"):
        return False
    header = entry.chunks[0]
    if header.name != HEADER or header.size > HEADER_LIMIT + 8:
        return False
    expected = _spans(read_bytes(store, header.digest), entry.size)
    return expected is not None and expected == _actual(entry.chunks)


def _actual(chunks: tuple[Chunk, ...]) -> list[tuple[int, int, str | None]]:
    out, offset = [], 0
    for chunk in chunks:
        out.append((offset, chunk.size, chunk.name))
        offset += chunk.size
    return out


def _spans(head: bytes, size: int) -> list[tuple[int, int, str | None]] | None:
    """(offset, size, name) of the header and tensors, as `store._chunking` cuts them."""
    if len(head) < 8:
        return None
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len == 0 or 8 + header_len > size or header_len > HEADER_LIMIT:
        return None
    if len(head) != 8 + header_len:
        return None  # the header chunk must be exactly the header
    try:
        header = json.loads(head[8:])
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    start, data_len = 8 + header_len, size - 8 - header_len
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
    cuts = sorted({0, data_len, *(point for bounds in ranges for point in bounds)})
    tensors = [
        (start + begin, end - begin, ranges.get((begin, end)))
        for begin, end in zip(cuts, cuts[1:], strict=False)
    ]
    return [(0, start, HEADER), *tensors]
