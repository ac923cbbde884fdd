"""Blobs as objects in any S3-compatible store: `<prefix>/sha256/ab/<hex>`."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from modelyard._imports import require
from modelyard.errors import (
    BlobNotFound,
    BucketNotFound,
    ConfigurationError,
    StoreAccessDenied,
    StoreBusy,
    StoreUnavailable,
)
from modelyard.settings import Settings
from modelyard.store._digests import PREFIX, check_digest, verified
from modelyard.store._multipart import (
    MIN_PART_SIZE,
    PART_SIZE,
    THREADS,
    FileRanges,
    Multipart,
    seekable,
)
from modelyard.store._protocol import BlobInfo, BlobSource, iter_source

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SPOOL_IN_MEMORY = 4 << 20
"""A streamed blob is spooled to a local temporary file past this size, keeping memory flat."""

log = logging.getLogger("modelyard.store")

REFRESH_BY_COPY = 8 << 20
"""A reused blob up to this size has its LastModified restarted by a copy onto itself."""

LEASE_RENEWAL = 15.0
"""Seconds between renewals of a writer's or a collection's lease object."""

LEASE_EXPIRY = 90.0
"""A lease not renewed for this long belongs to a dead process and is ignored."""

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3Store:
    """A content-addressed store in an S3 bucket (AWS, SeaweedFS, MinIO, Ceph, …).

    >>> store = S3Store.from_settings(Settings(store_url="s3://models/prod"))
    >>> digest = store.put(b"weights")
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        client: S3Client,
        part_size: int = PART_SIZE,
        threads: int = THREADS,
    ) -> None:
        """Blobs over `part_size` bytes go up and come down in parts, `threads` at a time."""
        if part_size < MIN_PART_SIZE or threads < 1:
            raise ConfigurationError(
                f"S3 part size {part_size} must be at least {MIN_PART_SIZE} (5 MiB) and "
                f"threads {threads} at least 1"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.multipart = Multipart(client, bucket, self._errors, part_size, threads)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        """The store `settings.store_url` (`s3://bucket/prefix`) names, with the S3 settings."""
        parts = urlsplit(settings.store_url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigurationError(
                f"store URL {settings.store_url!r} names no bucket; use s3://bucket/prefix"
            )
        boto3 = require("boto3", extra="s3")
        # Bounded waits: an endpoint that accepts connections and never answers costs at most
        # (1 + s3_retries) attempts of s3_timeout_seconds each (plus short backoffs), not minutes.
        config = require("botocore.config", extra="s3").Config(
            signature_version="s3v4",
            connect_timeout=settings.s3_timeout_seconds,
            read_timeout=settings.s3_timeout_seconds,
            retries={"total_max_attempts": settings.s3_retries + 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            # Up to four transfers at once (store_directory's workers), each `THREADS` parts.
            max_pool_connections=4 * THREADS,
        )
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        )
        attempts = settings.s3_retries + 1
        client.meta.events.register("needs-retry.s3", functools.partial(_report_retry, attempts))
        return cls(parts.netloc, prefix=parts.path, client=client)

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    def key(self, digest: str) -> str:
        """The object key of the blob with `digest`."""
        hexdigest = check_digest(digest)[len(PREFIX) :]
        path = f"sha256/{hexdigest[:2]}/{hexdigest}"
        return f"{self.prefix}/{path}" if self.prefix else path

    def put(self, data: BlobSource, *, digest: str | None = None) -> str:
        if digest is not None and self._refresh(digest):
            return digest
        if isinstance(data, bytes | bytearray | memoryview):
            return self._put_bytes(bytes(data), digest)
        if seekable(data):
            return self._put_file(data, digest, check=True)  # type: ignore[arg-type]
        # A stream's digest, hence its key, is known only at its end: keep it until then.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            hasher = hashlib.sha256()
            for piece in iter_source(data):
                hasher.update(piece)
                spool.write(piece)
            known, digest = digest, PREFIX + hasher.hexdigest()
            if digest != known and self._refresh(digest):
                return digest
            spool.seek(0)
            return self._put_file(spool, digest, check=False)  # type: ignore[arg-type]

    def _put_bytes(self, content: bytes, digest: str | None) -> str:
        small = len(content) <= self.multipart.part_size
        if digest is None:
            digest = PREFIX + hashlib.sha256(content).hexdigest()
            # Writing a small blob again restarts its age as a refresh would, for one request.
            if not small and self._refresh(digest):
                return digest
        key = self.key(digest)
        if small:
            with self._errors(f"write {digest}"):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=content)
            return digest

        def read(offset: int, size: int) -> bytes:
            return content[offset : offset + size]

        self.multipart.upload(key, read, len(content), digest=digest, check=False)
        return digest

    def _put_file(self, handle: BinaryIO, digest: str | None, *, check: bool) -> str:
        """Put the rest of a seekable file: hashed first where its digest is not known (the
        key needs it), then sent in parts. Unless `check` is off, a file that changes in
        between is refused rather than stored under the wrong digest: an OS file by its
        status (size, times), anything else, and a digest the caller gave, by hashing again."""
        start = handle.tell()
        size = handle.seek(0, os.SEEK_END) - start
        handle.seek(start)
        if size <= self.multipart.part_size:  # hashed here unless trusted, like the parts
            return self._put_bytes(handle.read(), None if check else digest)
        ranges = FileRanges(handle, start)
        unchanged = ranges.unchanged()
        if digest is None:
            digest = ranges.digest(size)
            if self._refresh(digest):
                return digest
            check = check and ranges.fileno is None
        key = self.key(digest)
        self.multipart.upload(
            key, ranges.read, size, digest=digest, check=check, unchanged=unchanged
        )
        return digest

    def _refresh(self, digest: str) -> bool:
        """Whether the blob is stored. A small one's LastModified restarts now (a copy onto
        itself), so a collection's grace period covers a registration that reuses it; a large
        one is left as it is (a copy would cost its size), covered by `writing` and by the
        grace given to young manifests."""
        key = self.key(digest)
        try:
            with self._errors(f"check {digest}", missing=digest):
                size = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
            if size <= REFRESH_BY_COPY:
                self._copy_onto_itself(digest)
        except BlobNotFound:
            return False
        return True

    def _copy_onto_itself(self, digest: str) -> None:
        key = self.key(digest)
        try:
            with self._errors(f"refresh {digest}", missing=digest):
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": key},
                    MetadataDirective="REPLACE",
                )
        except StoreUnavailable:
            pass  # a store that cannot copy: the blob is there, its age stays as it was

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold off garbage collection from the first `put` until the version is registered.

        A writer puts a lease object under `<prefix>/leases/`, then looks for a collection's
        lease; a collection does the same the other way round, so at least one of them sees
        the other (S3 lists what was written before). A writer that sees a collection steps
        back and waits for it to end; leases are renewed while held, and ignored once they have
        not been for `LEASE_EXPIRY` seconds (a process killed with `kill -9`).
        """
        while True:
            with self._lease("write"):
                if not self._live_leases("gc"):
                    yield
                    return
            time.sleep(0.25)

    @contextmanager
    def collecting(self, *, wait: float) -> Iterator[None]:
        """Exclude writers while a collection decides and deletes; `StoreBusy` after `wait` s."""
        with self._lease("gc"):
            deadline = time.monotonic() + wait
            while writers := self._live_leases("write"):
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"{len(writers)} write(s) to s3://{self.bucket}/{self.prefix} kept "
                        f"garbage collection waiting for {wait:g} s; run it again later, or "
                        "with a longer --wait-seconds"
                    )
                time.sleep(0.25)
            yield

    def _lease_prefix(self) -> str:
        return f"{self.prefix}/leases/" if self.prefix else "leases/"

    @contextmanager
    def _lease(self, kind: str) -> Iterator[None]:
        key = f"{self._lease_prefix()}{kind}-{uuid.uuid4().hex}"
        with self._errors(f"write the lease {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(key, stop), name=f"modelyard-lease-{kind}", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            with self._errors(f"delete the lease {key}"):
                self.client.delete_object(Bucket=self.bucket, Key=key)

    def _renew(self, key: str, stop: threading.Event) -> None:
        while not stop.wait(LEASE_RENEWAL):
            try:
                with self._errors(f"renew the lease {key}"):
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
            except StoreUnavailable:
                continue  # the next renewal may get through; expiry is far longer

    def _live_leases(self, kind: str) -> list[str]:
        """Keys of the leases of `kind` renewed recently, judged by the store's own clock (the
        newest lease, ours included, stands for "now")."""
        with self._errors("list leases"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._lease_prefix()
            )
            items = [item for page in pages for item in page.get("Contents", [])]
        if not items:
            return []
        now = max(item["LastModified"] for item in items)
        name = f"{self._lease_prefix()}{kind}-"
        return [
            item["Key"]
            for item in items
            if item["Key"].startswith(name)
            and (now - item["LastModified"]).total_seconds() < LEASE_EXPIRY
        ]

    def get(self, digest: str) -> Iterator[bytes]:
        first = self._first_part(digest)
        total = first["ContentLength"]
        if span := first.get("ContentRange"):  # "bytes 0-8388607/1073741824"
            total = int(span.rpartition("/")[2])
        pieces = self.multipart.download(self.key(digest), first, total, digest=digest)
        return verified(digest, pieces)

    def _first_part(self, digest: str) -> Any:
        """The answer to a GET of the blob's first part, which also gives its size."""
        botocore = require("botocore.exceptions", extra="s3")
        key = self.key(digest)
        with self._errors(f"read {digest}", missing=digest):
            try:
                span = f"bytes=0-{self.multipart.part_size - 1}"
                return self.client.get_object(Bucket=self.bucket, Key=key, Range=span)
            except botocore.ClientError as error:
                if error.response.get("Error", {}).get("Code") != "InvalidRange":
                    raise
                return self.client.get_object(Bucket=self.bucket, Key=key)  # an empty blob

    def exists(self, digest: str) -> bool:
        key = self.key(digest)
        try:
            with self._errors(f"check {digest}", missing=digest):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except BlobNotFound:
            return False
        return True

    def delete(self, digest: str) -> bool:
        if not self.exists(digest):
            return False
        with self._errors(f"delete {digest}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
        return True

    def blobs(self) -> Iterator[BlobInfo]:
        prefix = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list blobs"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = item["Key"].rsplit("/", 1)[-1]
                    yield BlobInfo(
                        digest=PREFIX + name, size=item["Size"], modified=item["LastModified"]
                    )

    @contextmanager
    def _errors(self, action: str, *, missing: str | None = None) -> Iterator[None]:
        botocore = require("botocore.exceptions", extra="s3")
        endpoint = self.client.meta.endpoint_url
        try:
            yield
        except botocore.ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING and missing is not None:
                raise BlobNotFound(missing) from None
            if code == "NoSuchBucket":
                raise BucketNotFound(self.bucket) from None
            if code in _DENIED:
                raise StoreAccessDenied(
                    f"{endpoint} refused to {action} in bucket {self.bucket!r} ({code}); check "
                    "MODELYARD_S3_ACCESS_KEY_ID and MODELYARD_S3_SECRET_ACCESS_KEY"
                ) from None
            raise StoreUnavailable(f"S3 at {endpoint} failed to {action}: {code} {error}") from None
        except (botocore.EndpointConnectionError, botocore.ConnectTimeoutError) as error:
            raise StoreUnavailable(
                f"cannot reach the S3 endpoint {endpoint} ({error}); is it running, and is "
                "MODELYARD_S3_ENDPOINT_URL right?"
            ) from None
        except (botocore.ReadTimeoutError, botocore.ConnectionClosedError) as error:
            config = self.client.meta.config  # the stubs lack these two attributes
            attempts = (getattr(config, "retries", None) or {}).get("total_max_attempts", 1)
            waited = getattr(config, "read_timeout", 0)
            raise StoreUnavailable(
                f"the S3 endpoint {endpoint} did not answer to {action} (waited "
                f"{waited:g} s, {attempts} attempt(s): {error}); check that it is "
                "running and reachable and that MODELYARD_S3_ENDPOINT_URL is right "
                "(MODELYARD_S3_TIMEOUT_SECONDS and MODELYARD_S3_RETRIES set the wait)"
            ) from None
        except botocore.BotoCoreError as error:
            raise StoreUnavailable(f"S3 at {endpoint} failed to {action}: {error}") from None


def _report_retry(
    total: int,
    *,
    attempts: int,
    caught_exception: Exception | None = None,
    operation: Any = None,
    **_: Any,
) -> None:
    """Log each failed S3 attempt that will be tried again (a connection that failed or timed
    out), so a slow or silent endpoint shows progress instead of a hang. Returns None:
    botocore's own retry handler decides whether and when to retry."""
    if caught_exception is None or attempts >= total:
        return
    name = getattr(operation, "name", "request")
    log.warning("S3 %s: attempt %d of %d failed (%s); trying again",
                name, attempts, total, caught_exception)  # fmt: skip
