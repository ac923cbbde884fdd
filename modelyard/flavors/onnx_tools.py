"""ONNX helpers that other packages share with the onnx flavor: a session on this machine's
providers and the arrays to feed it.

>>> from modelyard.flavors import onnx_tools
>>> runner = onnx_tools.session(graph.SerializeToString(), [onnx_tools.CPU])
>>> runner.run(None, onnx_tools.feeds(runner.get_inputs(), X))

The optimizer calibrates quantized graphs the way the flavor runs them; this module is what it
may use of the flavor (its `_onnx` module is its own). onnxruntime is imported only when a
session is made.
"""

from __future__ import annotations

from modelyard.flavors._onnx import CPU, feeds, session

__all__ = ["CPU", "feeds", "session"]
