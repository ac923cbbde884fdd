"""The Open Inference Protocol over gRPC: `inference.GRPCInferenceService` in front of the same
`DataPlane` as HTTP, so the same batchers, metrics, prediction log and alias following.

`GrpcServer` runs on the event loop of the HTTP server (grpc.aio): the inference app's lifespan
binds it before the models load (a port in use fails at once), starts it once they are ready,
and stops it at shutdown, letting calls in flight finish. The handlers are registered from the
service's own descriptor in the generated `oip_pb2`, so the method names are the protocol's.

Errors are the same typed errors as over HTTP, sent as the gRPC status their HTTP status maps
to (`STATUS_CODES`), with the message as the details and the error's wire `code` in the
trailing metadata (`modelyard-error-code`; a busy server adds `retry-after`). With auth on, the
bearer token travels in the `authorization` metadata, checked as over HTTP (the reader role on
the model); ServerLive and ServerReady stay open, like the HTTP health routes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from modelyard.api._grpc_tensors import decode_infer_request, encode_infer_response
from modelyard.api._serving_auth import TokenCheck, token_check
from modelyard.errors import ConfigurationError, ModelNotReady, ModelyardError, ServerBusy
from modelyard.serving import DataPlane
from modelyard.serving.grpc import oip_pb2 as pb
from modelyard.settings import Settings

log = logging.getLogger("modelyard.serving")

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
"""The protocol's service, `inference.GRPCInferenceService`, as the .proto describes it."""

GRACE_SECONDS = 30.0
"""How long calls in flight may take to finish at shutdown (the HTTP server's own grace)."""

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    507: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
"""The gRPC status for each HTTP status a `ModelyardError` carries; others are UNKNOWN."""

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)
if TYPE_CHECKING:  # grpc's classes are generic in its stubs only
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    Handler: TypeAlias = Callable[[RequestT, Context], Awaitable[ResponseT]]


class GrpcServer:
    """`inference.GRPCInferenceService` over `plane` on `address` (`127.0.0.1:8081`), with the
    TLS, bearer tokens and message size limit of `settings`. `reuse_port`: several processes
    serve the same port (`serve --workers`), the kernel spreading connections among them.

    >>> server = GrpcServer(plane, address="127.0.0.1:8081", settings=settings)
    >>> await server.bind(); await server.start(); ...; await server.stop()
    """

    def __init__(
        self, plane: DataPlane, *, address: str, settings: Settings, reuse_port: bool = False
    ) -> None:
        self.address = address
        self.settings = settings
        self.service = InferenceService(plane, check=token_check(settings))
        self.reuse_port = reuse_port
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._started = False

    async def bind(self) -> None:
        """Bind the address (clients that connect now wait until `start`);
        `ConfigurationError` when it cannot be bound."""
        if self._server is None:
            self._server = self._bound()

    async def start(self) -> None:
        """Answer calls (binding first, if `bind` was not called)."""
        if self._server is None:
            self._server = self._bound()
        await self._server.start()
        self._started = True

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        """Refuse new calls and let those in flight finish, for at most `grace` seconds."""
        if self._server is None:
            return
        if not self._started:  # grpc lets go of a port only once its server has started
            await self._server.start()
        await self._server.stop(grace)
        self._server = None
        self._started = False

    def _bound(self) -> grpc.aio.Server:
        options = [
            ("grpc.so_reuseport", int(self.reuse_port)),
            ("grpc.max_receive_message_length", self.settings.serve_max_body_bytes),
        ]
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers((self.service.handler(),))
        try:
            self.port = self._add_port(server)
        except RuntimeError:  # grpc names neither the cause nor the address
            raise ConfigurationError(
                f"cannot listen for gRPC on {self.address}: is it in use? Stop what listens "
                "there, or pick another --grpc-port"
            ) from None
        return server

    def _add_port(self, server: grpc.aio.Server) -> int:
        certfile, keyfile = self.settings.tls_certfile, self.settings.tls_keyfile
        if certfile is None or keyfile is None:
            return server.add_insecure_port(self.address)
        for path in (certfile, keyfile):
            if not path.is_file():
                raise ConfigurationError(f"TLS file {path} does not exist")
        pair = (keyfile.read_bytes(), certfile.read_bytes())
        return server.add_secure_port(self.address, grpc.ssl_server_credentials([pair]))


class InferenceService:
    """The six calls of `inference.GRPCInferenceService`, answered by `plane`."""

    def __init__(self, plane: DataPlane, *, check: TokenCheck | None = None) -> None:
        self.plane = plane
        self.check = check

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's handlers, each method under the protocol's own name."""
        calls: dict[str, tuple[Handler[Any, Any], type[Message]]] = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": (self.model_infer, pb.ModelInferRequest),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                _answering(method),
                request_deserializer=request.FromString,
                response_serializer=_serialize,
            )
            for name, (method, request) in calls.items()
        }
        return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)

    async def server_live(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.plane.live())

    async def server_ready(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.ready())

    async def model_ready(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        await self._authorize(context, request.name)
        try:
            ready = self.plane.model_ready(request.name, request.version or None)
        except ModelNotReady:  # served, not ready yet: an answer, not an error
            ready = False
        return pb.ModelReadyResponse(ready=ready)

    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        await self._authorize(context, None)
        return pb.ServerMetadataResponse(**self.plane.metadata())

    async def model_metadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        await self._authorize(context, request.name)
        document = self.plane.model_metadata(request.name, request.version or None)
        return pb.ModelMetadataResponse(
            name=document["name"],
            versions=document["versions"],
            platform=document["platform"],
            inputs=[_tensor_metadata(spec) for spec in document["inputs"]],
            outputs=[_tensor_metadata(spec) for spec in document["outputs"]],
            properties={key: str(value) for key, value in document["parameters"].items()},
        )

    async def model_infer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        await self._authorize(context, request.model_name)
        decoded = decode_infer_request(request)
        answer = await self.plane.infer(request.model_name, request.model_version or None, decoded)
        return encode_infer_response(answer, raw=bool(request.raw_input_contents))

    async def _authorize(self, context: Context, model: str | None) -> None:
        if self.check is None:
            return
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        authorization = metadata.get("authorization")
        await self.check(
            authorization if isinstance(authorization, str) else None, _client(context), model
        )


def _answering(method: Handler[RequestT, ResponseT]) -> Handler[RequestT, ResponseT]:
    """`method`, answering a `ModelyardError` (or a bug of ours) with its gRPC status."""

    async def answer(request: RequestT, context: Context) -> ResponseT:
        try:
            return await method(request, context)
        except ModelyardError as error:
            await _abort(context, error)
        except Exception as error:  # a bug of ours: say so, and keep serving
            log.exception("unexpected error in gRPC %s", type(request).__name__)
            await _abort(context, ModelyardError(f"internal error: {error}"))

    return answer


async def _abort(context: Context, error: ModelyardError) -> NoReturn:
    """End the call with `error`'s status, message and wire code (raises, as grpc's abort does)."""
    metadata = [("modelyard-error-code", error.code)]
    if isinstance(error, ServerBusy):
        metadata.append(("retry-after", str(error.retry_after)))
    status = STATUS_CODES.get(error.status_code, grpc.StatusCode.UNKNOWN)
    await context.abort(status, error.message, trailing_metadata=tuple(metadata))


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _tensor_metadata(spec: dict[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    shape = [-1 if size is None else int(size) for size in spec.get("shape") or []]
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec["name"], datatype=spec["datatype"], shape=shape
    )


def _client(context: Context) -> str | None:
    """The caller's IP address from grpc's peer (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`)."""
    kind, _, rest = context.peer().partition(":")
    if kind not in ("ipv4", "ipv6") or not rest:
        return None
    host = rest.rpartition(":")[0]
    return host.strip("[]") or None
