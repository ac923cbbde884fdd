"""Blob routes, so remote clients store and fetch files through the server's own store.

Uploads are verified: the bytes must hash to the digest in the path, or the server answers 400
and stores nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from modelyard._yard import Yard
from modelyard.errors import DigestMismatch
from modelyard.store import BlobStore, check_digest, digest_bytes

MAX_BLOB = 64 << 20
"""Largest single upload kept in memory; bigger blobs are refused (clients chunk files first)."""


def blob_routes(yard: Yard) -> APIRouter:
    """HEAD, GET and PUT of blobs by digest."""
    router = APIRouter(tags=["blobs"])

    @router.head("/blobs/{digest}")
    def blob_exists(digest: str) -> Response:
        return Response(status_code=200 if yard.store.exists(digest) else 404)

    @router.get("/blobs/{digest}")
    def get_blob(digest: str) -> StreamingResponse:
        pieces: Iterator[bytes] = yard.store.get(digest)
        return StreamingResponse(
            iterate_in_threadpool(pieces), media_type="application/octet-stream"
        )

    @router.put("/blobs/{digest}", status_code=201)
    async def put_blob(digest: str, request: Request) -> Response:
        check_digest(digest)
        content = await _read_limited(request.stream())
        await run_in_threadpool(store_verified, yard.store, digest, content)
        return Response(status_code=201)

    return router


def store_verified(store: BlobStore, digest: str, content: bytes) -> None:
    """Store bytes a client sent, only if they hash to the digest it named."""
    check_digest(digest)
    actual = digest_bytes(content)
    if actual != digest:
        raise DigestMismatch(digest, actual=actual)
    store.put(content, digest=digest)


async def _read_limited(stream: AsyncIterator[bytes]) -> bytes:
    from modelyard.errors import ConfigurationError

    parts, size = [], 0
    async for part in stream:
        size += len(part)
        if size > MAX_BLOB:
            raise ConfigurationError(f"a blob upload may hold at most {MAX_BLOB} bytes")
        parts.append(part)
    return b"".join(parts)
