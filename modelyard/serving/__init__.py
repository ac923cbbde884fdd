"""Serving: the Open Inference Protocol over registered versions, with dynamic batching,
backpressure, hot swap of followed aliases and Prometheus metrics.

>>> Yard().serve(["fraud@production"], port=8080)   # blocks; SIGTERM drains, exits 0

The core here knows nothing of HTTP; `modelyard.api._inference` is the ASGI adapter.
"""

from __future__ import annotations

from modelyard.serving._alias_events import AliasEvents, MemoryAliasEvents
from modelyard.serving._batching import Batcher
from modelyard.serving._binary import assemble_body, parse_header_length
from modelyard.serving._codecs import (
    Request,
    decode_request,
    encode_binary_response,
    encode_response,
)
from modelyard.serving._dataplane import DataPlane, Explained, Inference
from modelyard.serving._folders import FolderSource
from modelyard.serving._metrics import Metrics
from modelyard.serving._pool import ModelPool, ServedModel, ServedVersion
from modelyard.serving._predictions import (
    JsonLinesSink,
    MemorySink,
    PredictionLog,
    PredictionSink,
)
from modelyard.serving._runner import Runner
from modelyard.serving._sources import ModelSource

__all__ = [
    "AliasEvents",
    "Batcher",
    "DataPlane",
    "Explained",
    "FolderSource",
    "Inference",
    "JsonLinesSink",
    "MemoryAliasEvents",
    "MemorySink",
    "Metrics",
    "ModelPool",
    "ModelSource",
    "PredictionLog",
    "PredictionSink",
    "Request",
    "Runner",
    "ServedModel",
    "ServedVersion",
    "assemble_body",
    "decode_request",
    "encode_binary_response",
    "encode_response",
    "parse_header_length",
]
