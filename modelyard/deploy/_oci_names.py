"""Whether a pulled manifest's tensor names tell the truth, so it can be registered as it is.

A modelyard manifest names the tensor each safetensors chunk holds (`diff` reports changes by
those names). A pulled manifest comes from the registry: its blobs are verified, but its names
are only claims. This re-derives them from the file's own header (the header chunk, a few KiB)
the way `store_directory` cuts safetensors files, and accepts the manifest only when every name,
offset and size agrees. Anything unusual answers False: the caller then restores the folder and
logs it afresh, which derives every name from the bytes.
"""

from __future__ import annotations

import io

from modelyard.store import (
    SAFETENSORS_HEADER as HEADER,
)
from modelyard.store import (
    BlobStore,
    Chunk,
    Entry,
    Manifest,
    read_bytes,
    safetensors_spans,
)

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
    """(offset, size, name) of the header and tensors, cut exactly as `store_directory` cuts."""
    spans = safetensors_spans(io.BytesIO(head), size)
    if spans is None or spans[0].size != len(head):
        return None  # not a header, or the header chunk is not exactly the header
    return [(span.offset, span.size, span.name) for span in spans]
