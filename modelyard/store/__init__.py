"""Content-addressed blob storage: every model's bytes, stored once, read back verified.

>>> from modelyard.store import LocalStore, store_directory, restore_directory
>>> store = LocalStore("/tmp/blobs")
>>> manifest = store_directory(store, "model/")
>>> restore_directory(store, manifest.digest, "copy/")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard.store._cache import FolderCache
from modelyard.store._chunking import HEADER as SAFETENSORS_HEADER
from modelyard.store._chunking import Span, safetensors_spans
from modelyard.store._digests import check_digest, digest_bytes, verified
from modelyard.store._folders import restore_directory, store_directory
from modelyard.store._gc import (
    GarbageReport,
    KeptDigest,
    UniqueBytes,
    collect_garbage,
    guard_writes,
    unique_bytes,
)
from modelyard.store._local import LocalStore
from modelyard.store._manifests import Chunk, Entry, Manifest, load_manifest, save_manifest
from modelyard.store._memory import MemoryStore
from modelyard.store._protocol import (
    READ_SIZE,
    BlobInfo,
    BlobSource,
    BlobStore,
    iter_source,
    read_bytes,
)
from modelyard.store._urls import open_store

if TYPE_CHECKING:
    from modelyard.store._s3 import S3Store

__all__ = [
    "BlobInfo",
    "BlobSource",
    "BlobStore",
    "Chunk",
    "Entry",
    "FolderCache",
    "GarbageReport",
    "KeptDigest",
    "LocalStore",
    "Manifest",
    "MemoryStore",
    "READ_SIZE",
    "S3Store",
    "SAFETENSORS_HEADER",
    "Span",
    "UniqueBytes",
    "check_digest",
    "collect_garbage",
    "digest_bytes",
    "guard_writes",
    "iter_source",
    "load_manifest",
    "open_store",
    "read_bytes",
    "restore_directory",
    "safetensors_spans",
    "save_manifest",
    "store_directory",
    "unique_bytes",
    "verified",
]


def __getattr__(name: str) -> Any:
    # S3Store needs boto3 (the `s3` extra): import it only when asked for.
    if name == "S3Store":
        from modelyard.store._s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
