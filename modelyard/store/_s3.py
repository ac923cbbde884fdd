"""Blobs as objects in any S3-compatible store: `<prefix>/sha256/ab/<hex>`."""

from __future__ import annotations

import hashlib
import tempfile
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
    StoreUnavailable,
)
from modelyard.settings import Settings
from modelyard.store._digests import PREFIX, check_digest, verified
from modelyard.store._protocol import READ_SIZE, BlobInfo, BlobSource, iter_source

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MULTIPART_THRESHOLD = 8 << 20
"""Blobs above this size go up in parts; the object appears only when the upload completes."""

SPOOL_IN_MEMORY = 4 << 20
"""A streamed blob is spooled to a local temporary file past this size, keeping memory flat."""

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3Store:
    """A content-addressed store in an S3 bucket (AWS, SeaweedFS, MinIO, Ceph, …).

    >>> store = S3Store.from_settings(Settings(store_url="s3://models/prod"))
    >>> digest = store.put(b"weights")
    """

    def __init__(self, bucket: str, *, prefix: str = "", client: S3Client) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        """The store `settings.store_url` (`s3://bucket/prefix`) names, with the S3 settings."""
        parts = urlsplit(settings.store_url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigurationError(
                f"store URL {settings.store_url!r} names no bucket; use s3://bucket/prefix"
            )
        boto3 = require("boto3", extra="s3")
        config = require("botocore.config", extra="s3").Config(
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
            max_pool_connections=16,
        )
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        )
        return cls(parts.netloc, prefix=parts.path, client=client)

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    def key(self, digest: str) -> str:
        """The object key of the blob with `digest`."""
        hexdigest = check_digest(digest)[len(PREFIX) :]
        path = f"sha256/{hexdigest[:2]}/{hexdigest}"
        return f"{self.prefix}/{path}" if self.prefix else path

    def put(self, data: BlobSource, *, digest: str | None = None) -> str:
        if digest is not None and self.exists(digest):
            return digest
        if isinstance(data, bytes | bytearray | memoryview):
            content = bytes(data)
            digest = digest or PREFIX + hashlib.sha256(content).hexdigest()
            with self._errors(f"write {digest}"):
                self.client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=content)
            return digest
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            hasher = hashlib.sha256()
            for piece in iter_source(data):
                hasher.update(piece)
                spool.write(piece)
            digest = PREFIX + hasher.hexdigest()
            if not self.exists(digest):
                spool.seek(0)
                self._upload(spool, digest)  # type: ignore[arg-type]
        return digest

    def _upload(self, handle: BinaryIO, digest: str) -> None:
        transfer = require("boto3.s3.transfer", extra="s3")
        config = transfer.TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
        )
        with self._errors(f"write {digest}"):
            # Managed transfer aborts a failed multipart upload, so no partial object remains.
            self.client.upload_fileobj(handle, self.bucket, self.key(digest), Config=config)

    def get(self, digest: str) -> Iterator[bytes]:
        with self._errors(f"read {digest}", missing=digest):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(digest))["Body"]
        return verified(digest, self._stream(body, digest))

    def _stream(self, body: Any, digest: str) -> Iterator[bytes]:
        with self._errors(f"read {digest}"):
            try:
                while piece := body.read(READ_SIZE):
                    yield piece
            finally:
                body.close()

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
        except botocore.BotoCoreError as error:
            raise StoreUnavailable(f"S3 at {endpoint} failed to {action}: {error}") from None
