"""`HttpStore`: the blob store behind a `modelyard server`, for `Yard(url=…)`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import httpx

from modelyard._remote import INLINE_BLOB, raise_for
from modelyard.errors import BlobNotFound, ModelyardError
from modelyard.store import (
    READ_SIZE,
    BlobInfo,
    BlobSource,
    check_digest,
    digest_bytes,
    iter_source,
    verified,
)


class HttpStore:
    """The blob store behind a `modelyard server`; reads verify digests here too."""

    def __init__(self, client: httpx.Client, *, headers: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.headers = dict(headers or {})

    def put(self, data: BlobSource, *, digest: str | None = None) -> str:
        content = b"".join(iter_source(data))
        digest = digest or digest_bytes(content)
        # Sending a small blob costs less than asking first; the server keeps one copy anyway.
        if len(content) <= INLINE_BLOB or not self.exists(digest):
            raise_for(self.client.put(f"/blobs/{digest}", content=content, headers=self.headers))
        return digest

    def get(self, digest: str) -> Iterator[bytes]:
        check_digest(digest)
        request = self.client.build_request("GET", f"/blobs/{digest}", headers=self.headers)
        response = self.client.send(request, stream=True)
        if response.status_code == 404:
            response.close()
            raise BlobNotFound(digest)
        if not response.is_success:
            response.read()
            response.close()
            raise_for(response)
        return verified(digest, _pieces(response))

    def exists(self, digest: str) -> bool:
        check_digest(digest)
        response = self.client.head(f"/blobs/{digest}", headers=self.headers)
        if response.status_code in (401, 403):  # a HEAD answer has no body to say why
            raise_for(self.client.get(f"/blobs/{digest}", headers=self.headers))
        return response.status_code == 200

    def delete(self, digest: str) -> bool:
        raise ModelyardError("deleting blobs is the server's job: run `modelyard store gc` there")

    def blobs(self) -> Iterator[BlobInfo]:
        raise ModelyardError("listing blobs is the server's job: run `modelyard store stats` there")


def _pieces(response: httpx.Response) -> Iterator[bytes]:
    """The body as it arrives. A body cut short (the server found the blob corrupt after its
    200, or the connection broke) ends early instead of raising httpx's error, so `verified`
    hashes what came and raises `IntegrityError` naming the digest: no caller gets a blob that
    was not checked whole."""
    try:
        yield from response.iter_bytes(READ_SIZE)
    except httpx.TransportError:
        return
    finally:
        response.close()
