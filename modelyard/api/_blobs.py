"""Blob routes, so remote clients store and fetch files through the server's own store.

Uploads are verified: the bytes must hash to the digest in the path, or the server answers 400
and stores nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from modelyard._yard import Yard
from modelyard.api._acting import Caller
from modelyard.errors import DigestMismatch
from modelyard.security import Role
from modelyard.store import READ_SIZE, BlobStore, check_digest, digest_bytes

MAX_BLOB = 64 << 20
"""Largest single upload kept in memory; bigger blobs are refused (clients chunk files first)."""

VERIFY_AHEAD = 16 << 20
"""A blob up to this size is read and checked whole before its download starts."""


def blob_routes(yard: Yard, acting: Any) -> APIRouter:
    """HEAD, GET and PUT of blobs by digest. Blobs are shared by every model (a digest is
    stored once), so reading needs the reader role on some model and writing the editor role."""
    router = APIRouter(tags=["blobs"])

    @router.head("/blobs/{digest}")
    def blob_exists(digest: str, caller: Caller = acting) -> Response:
        caller.need_somewhere(Role.READER)
        return Response(status_code=200 if yard.store.exists(digest) else 404)

    @router.get("/blobs/{digest}")
    def get_blob(digest: str, caller: Caller = acting) -> StreamingResponse:
        caller.need_somewhere(Role.READER)
        pieces: Iterator[bytes] = yard.store.get(digest)
        # Reads are verified and hold the last piece back until the whole blob hashed right, so
        # reading a few pieces ahead checks a blob of up to VERIFY_AHEAD bytes before the 200:
        # a corrupt one is a typed IntegrityError; a bigger one is cut off, and the client's
        # own digest check turns that into the same error.
        head = list(itertools.islice(pieces, VERIFY_AHEAD // READ_SIZE))
        return StreamingResponse(
            iterate_in_threadpool(itertools.chain(head, pieces)),
            media_type="application/octet-stream",
        )

    @router.put("/blobs/{digest}", status_code=201)
    async def put_blob(digest: str, request: Request, caller: Caller = acting) -> Response:
        await run_in_threadpool(caller.need_somewhere, Role.EDITOR)  # may read the grants
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
