"""Large S3 objects in parts, several at once: multipart uploads and ranged downloads.

Each transfer runs its parts on a small thread pool of its own (socket I/O, hashing and
checksums release the GIL) and keeps at most `threads` parts in flight, so its memory stays
about `threads * part_size` however large the object.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from modelyard.errors import DigestMismatch, ModelyardError
from modelyard.store._digests import PREFIX
from modelyard.store._pipeline import ordered_map
from modelyard.store._protocol import READ_SIZE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART_SIZE = 8 << 20
"""Bytes per part, up and down (boto3's default too)."""

MIN_PART_SIZE = 5 << 20
"""S3 (and SeaweedFS) refuse to complete an upload whose parts but the last are smaller."""

THREADS = 8
"""Parts in flight per transfer. `store_directory` runs up to four transfers at once, so this
keeps a few dozen requests open at most, within the client's connection pool."""

MAX_PARTS = 10_000
"""S3's limit on parts per upload; larger objects get larger parts."""

Errors = Callable[..., AbstractContextManager[None]]
"""`S3Store._errors`: maps botocore's exceptions to modelyard's, naming the action."""

log = logging.getLogger("modelyard.store")


class FileRanges:
    """Reads byte ranges of a file (from `start` on) from any thread."""

    def __init__(self, handle: BinaryIO, start: int) -> None:
        self.handle = handle
        self.start = start
        self.lock = threading.Lock()
        try:
            self.fileno: int | None = handle.fileno()
        except (AttributeError, OSError, ValueError):  # BytesIO, a spool still in memory
            self.fileno = None

    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes at `start + offset`; fewer only where the file ends."""
        if self.fileno is not None:  # pread: no shared file position, no lock
            return os.pread(self.fileno, size, self.start + offset)
        with self.lock:
            self.handle.seek(self.start + offset)
            return self.handle.read(size)

    def digest(self, size: int) -> str:
        """The address of the `size` bytes from `start` on."""
        hasher = hashlib.sha256()
        for offset in range(0, size, 8 * READ_SIZE):
            hasher.update(self.read(offset, min(8 * READ_SIZE, size - offset)))
        return PREFIX + hasher.hexdigest()

    def unchanged(self) -> Callable[[], bool]:
        """A check that an OS file still has the size and times it has now (always true for
        a file in memory, which the caller hashes again instead)."""
        if self.fileno is None:
            return lambda: True
        fileno = self.fileno

        def status() -> tuple[int, int, int]:
            info = os.fstat(fileno)
            return info.st_size, info.st_mtime_ns, info.st_ctime_ns

        before = status()
        return lambda: status() == before


def seekable(data: object) -> bool:
    """Whether `data` is a file whose bytes can be read twice (hashed, then sent)."""
    check = getattr(data, "seekable", None)
    return callable(check) and bool(check()) and hasattr(data, "read")


@dataclass(frozen=True, slots=True)
class Multipart:
    """Moves one object in parts between a bucket and this process."""

    client: S3Client
    bucket: str
    errors: Errors
    part_size: int = PART_SIZE
    threads: int = THREADS

    def part_length(self, size: int) -> int:
        """The part size for an object of `size` bytes (grown past `MAX_PARTS` parts)."""
        return max(self.part_size, math.ceil(size / MAX_PARTS))

    def upload(
        self,
        key: str,
        read: Callable[[int, int], bytes],
        size: int,
        *,
        digest: str,
        check: bool,
        unchanged: Callable[[], bool] = lambda: True,
    ) -> None:
        """Store `size` bytes, read by `read(offset, size)`, as `key`. The object appears only
        when every part is up; a failure aborts the upload, so no part is left behind. With
        `check`, the bytes sent are hashed in order and must match `digest`; `unchanged()`
        must hold before the upload completes (a cheaper check for a file hashed just now)."""
        extra = self._checksum()
        with self.errors(f"write {digest}"):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)[
                "UploadId"
            ]
        try:
            parts = self._send(key, upload_id, read, size, digest=digest, check=check)
            if not unchanged():
                raise ModelyardError(f"the source of {digest} changed while it was being stored")
            with self.errors(f"write {digest}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _checksum(self) -> dict[str, Any]:
        # As boto3's transfer manager does: CRC32 per part unless the client opted out.
        wanted = getattr(self.client.meta.config, "request_checksum_calculation", None)
        return {"ChecksumAlgorithm": "CRC32"} if wanted != "when_required" else {}

    def _send(
        self,
        key: str,
        upload_id: str,
        read: Callable[[int, int], bytes],
        size: int,
        *,
        digest: str,
        check: bool,
    ) -> list[dict[str, Any]]:
        length = self.part_length(size)
        extra = self._checksum()

        def send(number: int) -> tuple[dict[str, Any], bytes]:
            offset = (number - 1) * length
            data = read(offset, min(length, size - offset))
            with self.errors(f"write {digest}"):
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    **extra,
                )
            part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
            if "ChecksumCRC32" in response and extra:
                part["ChecksumCRC32"] = response["ChecksumCRC32"]
            return part, data

        hasher = hashlib.sha256()
        parts = []
        sent = 0
        numbers = range(1, math.ceil(size / length) + 1)
        with ThreadPoolExecutor(self.threads, "modelyard-s3-put") as pool:
            for part, data in ordered_map(send, numbers, pool=pool, window=self.threads):
                if check:
                    hasher.update(data)
                sent += len(data)
                parts.append(part)
        if sent != size:
            raise ModelyardError(
                f"the bytes of {digest} ended early ({sent} of {size}); put it again"
            )
        if check and (actual := PREFIX + hasher.hexdigest()) != digest:
            raise DigestMismatch(digest, actual=actual)
        return parts

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            with self.errors(f"abort the upload of {key}"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ModelyardError as error:  # the original failure matters more; say what is left
            log.warning("could not abort multipart upload %s of %s: %s", upload_id, key, error)

    def download(self, key: str, first: Any, total: int, *, digest: str) -> Iterator[bytes]:
        """The object's bytes in order. `first` is the answer to a GET of its first part, which
        told the `total` size; the other parts are fetched by ranged GETs, a few at once."""
        length = self.part_size
        if total <= first["ContentLength"]:
            yield from self._stream(first["Body"], digest)
            return

        def fetch(index: int) -> list[bytes]:
            if index == 0:
                return list(self._stream(first["Body"], digest))
            end = min((index + 1) * length, total) - 1
            with self.errors(f"read {digest}", missing=digest):
                answer = self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={index * length}-{end}"
                )
            return list(self._stream(answer["Body"], digest))

        try:
            with ThreadPoolExecutor(self.threads, "modelyard-s3-get") as pool:
                count = math.ceil(total / length)
                for pieces in ordered_map(fetch, range(count), pool=pool, window=self.threads):
                    yield from pieces
        finally:
            first["Body"].close()

    def _stream(self, body: Any, digest: str) -> Iterator[bytes]:
        with self.errors(f"read {digest}"):
            try:
                while piece := body.read(READ_SIZE):
                    yield piece
            finally:
                body.close()
