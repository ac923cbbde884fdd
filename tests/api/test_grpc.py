"""The Open Inference Protocol over gRPC, in this process: the server on the same data plane as
HTTP, asked through the stubs generated from the protocol's .proto (tritonclient cannot share a
process with them, see test_grpc_client.py): health, metadata, typed and raw inference, each
error as its status, tokens, TLS, metrics and the prediction log."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pytest
from sklearn.linear_model import LinearRegression

from modelyard import Settings, Yard
from modelyard.api import InferenceApp, create_inference_app
from modelyard.api._grpc import SERVICE, GrpcServer
from modelyard.api._grpc_tensors import CONTENTS
from modelyard.api._listening import address_of, check_free
from modelyard.errors import ConfigurationError
from modelyard.flavors import numpy_dtype
from modelyard.registry import Principals
from modelyard.serving.grpc import oip_pb2 as pb
from modelyard.serving.grpc import oip_pb2_grpc
from tests.flavors.pyfunc_models import Picky, Sleepy
from tests.security.test_tls import make_certificate
from tests.servers import free_port

pytestmark = pytest.mark.anyio

X = np.arange(12, dtype=np.float32).reshape(4, 3)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def yard(tmp_path: Path) -> Yard:
    settings = Settings(home=tmp_path / "home", serve_poll_seconds=0.05)
    yard = Yard(settings)
    yard.log_model(LinearRegression().fit(X, X.sum(axis=1)), name="sum", input_example=X[:2],
                   alias="production")  # fmt: skip
    yard.log_model(Picky(), name="picky", input_example=X[:2])
    return yard


@dataclass
class Served:
    app: InferenceApp
    server: GrpcServer
    stub: Any  # oip_pb2_grpc.GRPCInferenceServiceStub: generated, untyped


@asynccontextmanager
async def serving(
    yard: Yard, *refs: str, started: bool = True, credentials: Any = None
) -> AsyncIterator[Served]:
    """The inference app for `refs` (models loaded unless `started` is false) with a gRPC
    server on a free port, and a stub connected to it."""
    app = create_inference_app(yard.settings, list(refs), yard=yard, trust=True)
    assert app.on_startup is not None and app.on_shutdown is not None
    server = GrpcServer(app.plane, address="127.0.0.1:0", settings=yard.settings)
    await server.start()
    if started:
        await app.on_startup()
    target = f"127.0.0.1:{server.port}"
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials)
    try:
        async with channel:
            yield Served(app, server, oip_pb2_grpc.GRPCInferenceServiceStub(channel))
    finally:
        await server.stop(grace=1)
        if started:
            await app.on_shutdown()


def typed_request(model: str, data: np.ndarray[Any, Any], **fields: Any) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP32",
                                                   shape=data.shape)  # fmt: skip
    tensor.contents.fp32_contents.extend(data.ravel().tolist())
    return pb.ModelInferRequest(model_name=model, inputs=[tensor], **fields)


def raw_request(model: str, data: np.ndarray[Any, Any], **fields: Any) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP32",
                                                   shape=data.shape)  # fmt: skip
    raw = [data.astype("<f4").tobytes()]
    return pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=raw, **fields)


def typed_values(output: Any) -> list[float]:
    """An output's typed contents, from the field its datatype uses."""
    return list(getattr(output.contents, CONTENTS[output.datatype]))


def raw_values(answer: Any, index: int = 0) -> np.ndarray[Any, Any]:
    output = answer.outputs[index]
    dtype = numpy_dtype(output.datatype).newbyteorder("<")
    return np.frombuffer(answer.raw_output_contents[index], dtype).reshape(list(output.shape))


async def refusal(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def error_code(error: grpc.aio.AioRpcError) -> str:
    return dict(error.trailing_metadata() or ())["modelyard-error-code"]


async def test_every_call_of_the_service_is_answered() -> None:
    assert SERVICE.full_name == "inference.GRPCInferenceService"
    assert [method.name for method in SERVICE.methods] == [
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
    ]  # fmt: skip


async def test_health_and_metadata(yard: Yard) -> None:
    async with serving(yard, "sum@production") as served:
        stub = served.stub
        assert (await stub.ServerLive(pb.ServerLiveRequest())).live
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="sum"))).ready
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="sum", version="1"))).ready
        server = await stub.ServerMetadata(pb.ServerMetadataRequest())
        assert server.name == "modelyard" and "metrics" in server.extensions
        model = await stub.ModelMetadata(pb.ModelMetadataRequest(name="sum"))
        assert (model.name, list(model.versions), model.platform) == ("sum", ["1"], "sklearn")
        (tensor,) = model.inputs
        assert (tensor.name, tensor.datatype, list(tensor.shape)) == ("input-0", "FP32", [-1, 3])
        assert model.properties["version"] == "1" and model.properties["ref"] == "sum:1"
    yard.close()


async def test_typed_inference_answers_typed(yard: Yard) -> None:
    async with serving(yard, "sum@production") as served:
        answer = await served.stub.ModelInfer(typed_request("sum", X[:2], id="r1"))
    assert (answer.model_name, answer.model_version, answer.id) == ("sum", "1", "r1")
    (output,) = answer.outputs
    assert not answer.raw_output_contents and output.datatype in ("FP32", "FP64")
    assert list(output.shape) == [2]
    assert np.allclose(typed_values(output), [3.0, 12.0])
    yard.close()


async def test_raw_inference_answers_raw_and_follows_the_requested_outputs(yard: Yard) -> None:
    requested = [pb.ModelInferRequest.InferRequestedOutputTensor(name="output-0")]
    async with serving(yard, "sum@production") as served:
        answer = await served.stub.ModelInfer(raw_request("sum", X, outputs=requested))
        version = await served.stub.ModelInfer(raw_request("sum", X[:1], model_version="1"))
    (output,) = answer.outputs
    assert output.name == "output-0" and not output.HasField("contents")
    assert np.allclose(raw_values(answer), X.sum(axis=1))
    assert version.model_version == "1"
    yard.close()


async def test_errors_come_back_as_their_status(yard: Yard) -> None:
    async with serving(yard, "sum@production", "picky") as served:
        stub = served.stub
        missing = await refusal(stub.ModelInfer(typed_request("nope", X[:1])))
        assert missing.code() == grpc.StatusCode.NOT_FOUND and "not served here" in str(
            missing.details()
        )
        assert error_code(missing) == "not_found"
        metadata = await refusal(stub.ModelMetadata(pb.ModelMetadataRequest(name="nope")))
        assert metadata.code() == grpc.StatusCode.NOT_FOUND
        ready = await refusal(stub.ModelReady(pb.ModelReadyRequest(name="sum", version="9")))
        assert ready.code() == grpc.StatusCode.NOT_FOUND
        bad = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP33", shape=[1])
        datatype = await refusal(stub.ModelInfer(pb.ModelInferRequest(model_name="sum",
                                                                      inputs=[bad])))  # fmt: skip
        assert datatype.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "FP33" in str(datatype.details()) and error_code(datatype) == "invalid_input"
        rejected = await refusal(stub.ModelInfer(typed_request("picky", -X[:1])))
        assert rejected.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "negative values" in str(rejected.details())
        assert error_code(rejected) == "input_rejected"
        broken = await refusal(stub.ModelInfer(typed_request("picky", X[:1] * 1e7)))
        assert broken.code() == grpc.StatusCode.INTERNAL
        assert "accumulator overflowed" in str(broken.details())
    yard.close()


async def test_a_model_still_loading_is_unavailable_and_not_ready(yard: Yard) -> None:
    async with serving(yard, "sum@production", started=False) as served:
        loading = await refusal(served.stub.ModelInfer(typed_request("sum", X[:1])))
        assert loading.code() == grpc.StatusCode.UNAVAILABLE and "loading" in str(loading.details())
        answer = await served.stub.ModelReady(pb.ModelReadyRequest(name="sum"))
        assert answer.ready is False
        assert not (await served.stub.ServerReady(pb.ServerReadyRequest())).ready
    yard.close()


async def test_a_full_queue_is_resource_exhausted_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", serve_max_queue=1, serve_max_batch_size=1)
    yard = Yard(settings)
    yard.log_model(Sleepy(), name="slow", input_example=X[:1])
    async with serving(yard, "slow") as served:
        calls = [served.stub.ModelInfer(typed_request("slow", X[:1])) for _ in range(4)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    busy = [result for result in results if isinstance(result, grpc.aio.AioRpcError)]
    assert busy and all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in busy)
    assert dict(busy[0].trailing_metadata() or ())["retry-after"] == "1"
    assert any(isinstance(result, pb.ModelInferResponse) for result in results)
    yard.close()


async def test_metrics_count_and_the_log_records_grpc_answers(yard: Yard) -> None:
    settings = yard.settings.model_copy(update={"serve_log_sample": 1.0})
    logged = Yard(settings)
    async with serving(logged, "sum@production") as served:
        answer = await served.stub.ModelInfer(typed_request("sum", X[:2]))
        await refusal(served.stub.ModelInfer(typed_request("sum", X[:1], model_version="7")))
        metrics = served.app.plane.metrics.exposition().decode()
    assert len(answer.id) == 32  # given by the log, for feedback
    assert 'code="200",model="sum",version="1"} 1.0' in metrics
    assert 'code="404",model="sum"' in metrics
    (day,) = (settings.home / "predictions" / "sum" / "1").iterdir()
    record = orjson.loads(day.read_bytes().splitlines()[0])
    assert record["id"] == answer.id and record["inputs"]["input-0"] == X[:2].tolist()
    logged.close()
    yard.close()


async def test_tokens_are_checked_as_over_http(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", user="ana", auth=True)
    yard = Yard(settings)
    yard.log_model(LinearRegression().fit(X, X.sum(axis=1)), name="sum", input_example=X[:2])
    principals = Principals(yard.local_registry().database, actor="root")
    principals.grant("rita", "reader", models="sum")
    rita, nobody = (principals.create_token(user=user).secret for user in ("rita", "nobody"))
    async with serving(yard, "sum") as served:
        stub = served.stub

        def bearer(token: str) -> list[tuple[str, str]]:
            return [("authorization", f"Bearer {token}")]

        anonymous = await refusal(stub.ModelInfer(typed_request("sum", X[:1])))
        assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
        forged = await refusal(stub.ModelInfer(typed_request("sum", X[:1]),
                                               metadata=bearer("myd_forged")))  # fmt: skip
        assert forged.code() == grpc.StatusCode.UNAUTHENTICATED
        refused = await refusal(stub.ModelMetadata(pb.ModelMetadataRequest(name="sum"),
                                                   metadata=bearer(nobody)))  # fmt: skip
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
        for _ in range(2):  # the first asks the registry, the second the cache
            answer = await stub.ModelInfer(typed_request("sum", X[:1]), metadata=bearer(rita))
            assert np.allclose(typed_values(answer.outputs[0]), [3.0])
        assert (await stub.ServerMetadata(pb.ServerMetadataRequest(),
                                          metadata=bearer(rita))).name == "modelyard"  # fmt: skip
        assert (await stub.ServerLive(pb.ServerLiveRequest())).live  # probes carry no token
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
    yard.close()


async def test_tls_from_the_settings(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path / "tls")
    settings = Settings(home=tmp_path / "home", tls_certfile=cert, tls_keyfile=key)
    yard = Yard(settings)
    yard.log_model(LinearRegression().fit(X, X.sum(axis=1)), name="sum", input_example=X[:2])
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    async with serving(yard, "sum", credentials=credentials) as served:
        answer = await served.stub.ModelInfer(raw_request("sum", X[:1]))
    assert np.allclose(raw_values(answer), [3.0])
    missing = settings.model_copy(update={"tls_keyfile": tmp_path / "nope.key"})
    with pytest.raises(Exception, match="nope.key does not exist"):
        await GrpcServer(served.app.plane, address="127.0.0.1:0", settings=missing).bind()
    yard.close()


async def test_a_port_in_use_is_refused_before_the_models_load(yard: Yard) -> None:
    port = free_port()
    app = create_inference_app(yard.settings, ["sum"], yard=yard, grpc_address=f"127.0.0.1:{port}")
    assert app.on_startup is not None and app.on_shutdown is not None
    await app.on_startup()
    try:
        assert app.plane.ready()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = oip_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
        again = create_inference_app(yard.settings, ["sum"], yard=yard,
                                     grpc_address=f"127.0.0.1:{port}")  # fmt: skip
        assert again.on_startup is not None
        with pytest.raises(Exception, match=f"cannot listen for gRPC on 127.0.0.1:{port}"):
            await again.on_startup()
        assert not again.plane.pool.ready()  # refused before loading anything
    finally:
        await app.on_shutdown()
    yard.close()


async def test_a_failed_start_lets_the_port_go(tmp_path: Path) -> None:
    yard = Yard(Settings(home=tmp_path / "home"))
    port = free_port()
    app = create_inference_app(yard.settings, ["ghost"], yard=yard,
                               grpc_address=f"127.0.0.1:{port}")  # fmt: skip
    assert app.on_startup is not None
    with pytest.raises(Exception, match="ghost"):
        await app.on_startup()
    again = GrpcServer(app.plane, address=f"127.0.0.1:{port}", settings=yard.settings)
    await again.bind()  # free again
    await again.stop()
    yard.close()


IMPORTS = textwrap.dedent(
    """
    import asyncio, json, sys
    from modelyard import Settings, Yard
    from modelyard.api import create_inference_app

    async def main():
        app = create_inference_app(Settings(home=sys.argv[1]), ["sum"])
        await app.on_startup()
        await app.on_shutdown()

    asyncio.run(main())
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("grpc", "google"))))
    """
)


def test_serving_without_grpc_never_imports_it(yard: Yard) -> None:
    yard.close()
    done = subprocess.run([sys.executable, "-c", IMPORTS, str(yard.settings.home)],
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    assert json.loads(done.stdout.splitlines()[-1]) == []


async def test_binding_twice_or_stopping_unbound_is_harmless(yard: Yard) -> None:
    app = create_inference_app(yard.settings, ["sum"], yard=yard)
    server = GrpcServer(app.plane, address="127.0.0.1:0", settings=yard.settings)
    await server.stop()  # never bound: nothing to do
    await server.bind()
    port = server.port
    await server.bind()
    assert server.port == port
    await server.stop(grace=0)
    yard.close()


def test_a_taken_port_is_named_with_its_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port} is already in use.*--grpc"):
            check_free("127.0.0.1", port)
    check_free("127.0.0.1", port)  # free again
    with pytest.raises(ConfigurationError, match="cannot listen on 192.0.2.1:8081: "):
        check_free("192.0.2.1", 8081)  # an address of no interface here (TEST-NET-1)
    assert address_of("::1", 8081) == "[::1]:8081" and address_of("[::1]", 1) == "[::1]:1"
    assert address_of("0.0.0.0", 8081) == "0.0.0.0:8081"


async def test_shutdown_lets_calls_in_flight_finish(tmp_path: Path) -> None:
    yard = Yard(Settings(home=tmp_path / "home"))
    yard.log_model(Sleepy(), name="slow", input_example=X[:1])
    port = free_port()
    app = create_inference_app(yard.settings, ["slow"], yard=yard, trust=True,
                               grpc_address=f"127.0.0.1:{port}")  # fmt: skip
    assert app.on_startup is not None and app.on_shutdown is not None
    await app.on_startup()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = oip_pb2_grpc.GRPCInferenceServiceStub(channel)
        call = asyncio.ensure_future(stub.ModelInfer(typed_request("slow", X[:1])))
        for _ in range(500):  # until the model has it (it then takes half a second)
            exposition = app.plane.metrics.exposition().decode()
            if re.search(r'modelyard_batch_rows_count\{model="slow"[^}]*\} 1\.0', exposition):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the model never got the call")
        await app.on_shutdown()
        answer = await call
    assert np.allclose(typed_values(answer.outputs[0]), [3.0])
    yard.close()


async def test_a_message_past_the_size_limit_is_resource_exhausted(tmp_path: Path) -> None:
    yard = Yard(Settings(home=tmp_path / "home", serve_max_body_bytes=2048))
    yard.log_model(LinearRegression().fit(X, X.sum(axis=1)), name="sum", input_example=X[:2])
    async with serving(yard, "sum") as served:
        big = np.zeros((200, 3), np.float32)  # 2,400 bytes of raw data
        refused = await refusal(served.stub.ModelInfer(raw_request("sum", big)))
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        small = await served.stub.ModelInfer(raw_request("sum", big[:10]))
        assert list(small.outputs[0].shape) == [10]
    yard.close()
