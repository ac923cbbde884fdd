"""The Open Inference Protocol's gRPC service, `inference.GRPCInferenceService`: the protocol's own
`oip.proto` and the stubs GENERATED from it by scripts/generate-grpc (`oip_pb2`, its `.pyi`, and
`oip_pb2_grpc` for clients). Import them by module; this package imports nothing itself, so
neither grpc nor protobuf loads until a server or client asks (`pip install -e ".[grpc]"`).

>>> from modelyard.serving.grpc import oip_pb2
>>> oip_pb2.ModelInferRequest(model_name="iris")
"""

from __future__ import annotations

__all__: list[str] = []
