"""The Open Inference Protocol over HTTP: a plain ASGI app in front of the `DataPlane`.

No web framework sits on this path: a request is matched against a handful of patterns, its
body read (up to the configured limit) and decoded straight into NumPy, and the answer written by
orjson. The OpenAPI document (`/openapi.json`) is the spec file the types are generated from.

This module is the transport only: `_serving_wiring` builds the data plane and what runs beside
it from the settings, and `_inference_server` runs the app in one process or several.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.api._responses import send_error
from modelyard.errors import MethodNotAllowed, ModelyardError, NotFound, PayloadTooLarge
from modelyard.monitoring import parse_feedback
from modelyard.serving import (
    DataPlane,
    Request,
    assemble_body,
    decode_request,
    encode_binary_response,
    encode_response,
    parse_header_length,
)

if TYPE_CHECKING:
    from modelyard.monitoring import AlertLoop

log = logging.getLogger("modelyard.serving")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_MODEL = re.compile(
    r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer|/explain|/feedback)?$"
)
_JSON = [(b"content-type", b"application/json")]
_BINARY_HEADER = b"inference-header-content-length"  # the binary data extension's


class InferenceApp:
    """ASGI app serving `plane`; `on_startup`/`on_shutdown` run in the lifespan (load models
    before the first request, drain them at SIGTERM)."""

    def __init__(
        self,
        plane: DataPlane,
        *,
        max_body_bytes: int,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        alerts: AlertLoop | None = None,
    ) -> None:
        self.plane = plane
        self.alerts = alerts
        self.max_body_bytes = max_body_bytes
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                await self._http(scope, receive, send)
            except ModelyardError as error:
                await _error(send, error)
            except Exception as error:  # a bug of ours: say so, and keep serving
                log.exception("unexpected error on %s", scope["path"])
                await _error(send, ModelyardError(f"internal error: {error}"))

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        match = _MODEL.match(path)
        if match is not None:
            name, version, action = match.groups()
            if action == "/infer" and method == "POST":
                await self._infer(name, version, scope, receive, send)
            elif action == "/explain" and method == "POST":
                await self._explain(name, version, scope, receive, send)
            elif action == "/feedback" and method == "POST":
                records = parse_feedback(await self._body(receive))
                stored = await self.plane.feedback(name, records)
                await _send(send, 200, orjson.dumps({"stored": stored}))
            elif action == "/ready" and method == "GET":
                self.plane.model_ready(name, version)
                await _send(send, 200, b"")
            elif action is None and method == "GET":
                await _send(send, 200, orjson.dumps(self.plane.model_metadata(name, version)))
            else:
                allowed = "POST" if action in ("/infer", "/explain", "/feedback") else "GET"
                await _error(send, MethodNotAllowed(method, path, allowed=[allowed]))
        elif method != "GET":
            await _error(send, MethodNotAllowed(method, path, allowed=["GET"]))
        elif path in ("/v2", "/v2/"):
            await _send(send, 200, orjson.dumps(self.plane.metadata()))
        elif path == "/v2/health/live":
            await _send(send, 200 if self.plane.live() else 503, b"")
        elif path == "/v2/health/ready":
            await _send(send, 200 if self.plane.ready() else 503, b"")
        elif path == "/metrics":
            headers = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
            await _send(send, 200, self.plane.metrics.exposition(), headers)
        elif path == "/openapi.json":
            await _send(send, 200, _openapi())
        else:
            raise NotFound(f"no route {path}; the Open Inference Protocol lives under /v2")

    async def _infer(
        self, name: str, version: str | None, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        request = await self._request(scope, receive)
        answer = await self.plane.infer(name, version, request)
        if any(request.wants_binary(output) for output in answer.outputs):
            body, length = encode_binary_response(
                answer.outputs,
                model_name=answer.model_name,
                model_version=answer.model_version,
                request_id=answer.id,
                binary=request.wants_binary,
            )
            headers = [
                (b"content-type", b"application/octet-stream"),
                (_BINARY_HEADER, str(length).encode()),
            ]
            await _send(send, 200, body, headers)
            return
        body = encode_response(
            answer.outputs,
            model_name=answer.model_name,
            model_version=answer.model_version,
            request_id=answer.id,
        )
        await _send(send, 200, body)

    async def _explain(
        self, name: str, version: str | None, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        """The same request as `/infer`; the answer is the explanation of each row."""
        request = await self._request(scope, receive)
        explained = await self.plane.explain(name, version, request)
        document: dict[str, Any] = {
            "model_name": explained.model_name,
            "model_version": explained.model_version,
        }
        if explained.id is not None:
            document["id"] = explained.id
        await _send(send, 200, orjson.dumps({**document, **explained.explanation.to_json()}))

    async def _request(self, scope: dict[str, Any], receive: Receive) -> Request:
        """Read and decode an inference request; with an `Inference-Header-Content-Length`
        header, the tensors after the JSON are read in place (the binary data extension)."""
        value = next((v for k, v in scope["headers"] if k == _BINARY_HEADER), None)
        if value is None:
            return decode_request(await self._body(receive))
        length = parse_header_length(value)
        body = assemble_body(await self._chunks(receive), header_length=length)
        return decode_request(body, header_length=length)

    async def _body(self, receive: Receive) -> bytes:
        chunks = await self._chunks(receive)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _chunks(self, receive: Receive) -> list[bytes]:
        """The request body's chunks, up to the size limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.on_startup is not None:
                        await self.on_startup()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    await self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or _JSON})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, error: ModelyardError) -> None:
    await send_error(send, error, oip=True)  # the OIP body: `{"error", "code"}`


@cache
def _openapi() -> bytes:
    import yaml  # the spec is YAML; read once, on the first request for it

    text = resources.files("modelyard.serving").joinpath("openapi/oip.yaml").read_text()
    return json.dumps(yaml.safe_load(text)).encode()
