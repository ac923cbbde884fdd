"""The Open Inference Protocol's binary data extension: tensors as raw bytes after the JSON.

A request (or response) body is then a JSON header of `Inference-Header-Content-Length` bytes,
followed by the tensors whose `parameters.binary_data_size` says so, back to back in the order
they are listed. Numbers are little-endian, BOOL one byte each, and a BYTES tensor holds each
element as a 4-byte little-endian length and that many bytes. This is the format Triton and
KServe speak (`tritonclient.http` sends it by default), so large tensors skip JSON both ways.

Inputs are NumPy views over the body when it allows: an aligned, writable buffer
(`assemble_body` makes one from the chunks a server reads) gives arrays without a copy;
otherwise each tensor is copied once, so a model always gets an aligned array it may write to.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable
from typing import Any

import numpy as np

from modelyard.errors import InvalidInput
from modelyard.flavors import datatype_of, numpy_dtype

HEADER = "Inference-Header-Content-Length"
"""The HTTP header giving the length of the JSON part of a body in bytes."""

ALIGNMENT = 64
"""Where `assemble_body` places the first tensor: a cache line, enough for every datatype."""

_LENGTH = struct.Struct("<I")
_DIGITS = re.compile(r"\s*[0-9]{1,18}\s*")


def parse_header_length(value: bytes | str) -> int:
    """The JSON header's length from the `Inference-Header-Content-Length` header's value."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if _DIGITS.fullmatch(text) is None:  # ASCII digits only, and few enough for any body
        raise InvalidInput(f"{HEADER} must be a whole number of bytes, got {text[:40]!r}")
    return int(text)


def assemble_body(chunks: Iterable[bytes], *, header_length: int) -> memoryview:
    """Join the chunks of a body into one writable buffer whose byte `header_length` (the first
    tensor) sits on an `ALIGNMENT` boundary: one copy, as `b"".join` would make, after which
    the tensors are read in place."""
    parts = list(chunks)
    total = sum(len(part) for part in parts)
    raw = np.empty(total + ALIGNMENT, np.uint8)
    start = -(raw.ctypes.data + header_length) % ALIGNMENT
    buffer = raw[start : start + total]
    position = 0
    for part in parts:
        buffer[position : position + len(part)] = np.frombuffer(part, np.uint8)
        position += len(part)
    return buffer.data


class BinaryData:
    """The tensors after a request's JSON header, read in input order."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.offset = 0

    def read(self, name: str, shape: list[int], datatype: str, size: Any) -> np.ndarray[Any, Any]:
        """The next `size` bytes as input `name`'s tensor of `shape` and `datatype`."""
        if type(size) is not int or size < 0:
            raise InvalidInput(
                f"input {name!r}: parameters.binary_data_size must be a whole number of bytes, "
                f"got {size!r}"
            )
        left = len(self.data) - self.offset
        if size > left:
            raise InvalidInput(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({left} bytes of binary data left)"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        count = math.prod(shape)
        if datatype == "BYTES":
            return _strings(name, chunk, count).reshape(shape)
        dtype = numpy_dtype(datatype).newbyteorder("<")
        if size != count * dtype.itemsize:
            raise InvalidInput(
                f"input {name!r} has shape {shape} of {datatype}, which is "
                f"{count * dtype.itemsize} bytes, but its binary_data_size is {size}"
            )
        array = np.frombuffer(chunk, dtype)
        if chunk.readonly or not array.flags.aligned:
            array = array.copy()  # a model may write to its input, and unaligned is slow
        if datatype == "BOOL" and array.view(np.uint8).max() > 1:
            raise InvalidInput(f"input {name!r}: BOOL bytes must be 0 or 1")
        return array.reshape(shape)

    def finish(self) -> None:
        """Check that the inputs' sizes account for every byte after the JSON header."""
        if self.offset != len(self.data):
            raise InvalidInput(
                f"the body holds {len(self.data)} bytes after the JSON header, but the inputs' "
                f"binary_data_size add up to {self.offset}"
            )


def _strings(name: str, chunk: memoryview, count: int) -> np.ndarray[Any, Any]:
    """A BYTES tensor: `count` length-prefixed elements filling `chunk` exactly. An element that
    is UTF-8 text becomes `str`, as JSON's strings do; other bytes stay `bytes`."""
    offset, size = 0, len(chunk)
    if count > size // 4:  # each element takes 4 bytes at least: refuse before allocating
        raise InvalidInput(
            f"input {name!r}: {size} bytes cannot hold {count} BYTES elements (4 bytes each "
            "at least)"
        )
    items = np.empty(count, dtype=object)
    for index in range(count):
        if offset + 4 > size:
            raise InvalidInput(
                f"input {name!r}: its binary data ends after {index} of {count} BYTES elements"
            )
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if offset + length > size:
            raise InvalidInput(
                f"input {name!r}: BYTES element {index} is {length} bytes long, past the end "
                f"of its binary data"
            )
        value = bytes(chunk[offset : offset + length])
        offset += length
        try:
            items[index] = value.decode("utf-8")
        except UnicodeDecodeError:
            items[index] = value
    if offset != size:
        raise InvalidInput(
            f"input {name!r}: {size - offset} bytes are left after its {count} BYTES elements"
        )
    return items


def tensor_bytes(array: np.ndarray[Any, Any]) -> tuple[str, bytes | memoryview]:
    """An output's datatype and its raw bytes as the extension lays them out (a view, where
    the array already is contiguous little-endian)."""
    if array.dtype.kind in "OSUT":
        return "BYTES", b"".join(_element(value) for value in array.ravel().tolist())
    datatype = datatype_of(array.dtype)
    flat = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1)
    return datatype, flat.view(np.uint8).data


def _element(value: Any) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return _LENGTH.pack(len(data)) + data
