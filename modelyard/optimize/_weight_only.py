"""Weight-only quantization, a `quantize` step: the Linear layers of a torch or transformers
version keep int8 weights (a scale per output channel) or int4 weights (a scale and a zero per
`group_size` input columns), and multiply float activations with torch's CPU kernels. The
child is the same kind of version as its parent (see `flavors._weight_only` for its files).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import LoadedModel
from modelyard.flavors.torch_tools import quantize_weights
from modelyard.flavors.transformers_tools import TextModel


def check_request(dtype: str, method: str, group_size: int | None) -> None:
    """Refuse, before any work, a dtype or group size that does not go with the method."""
    if method == "weight-only" and dtype not in ("int8", "int4"):
        raise ConfigurationError(f"weight-only quantization is int8 or int4, not {dtype}")
    if dtype == "int4" and method != "weight-only":
        raise ConfigurationError("int4 is weight-only: pass method='weight-only'")
    if group_size is not None and (method, dtype) != ("weight-only", "int4"):
        raise ConfigurationError("group_size is for method='weight-only' with dtype='int4'")


def weight_only(
    parent: LoadedModel, module: Any, *, dtype: str, group_size: int | None
) -> tuple[Any, dict[str, Any]]:
    """The child of a torch version (`module`: its rebuilt `nn.Module`) or of a transformers
    version with a torch network, and the step's settings."""
    kind = parent.flavor.name
    if kind == "torch":
        child, done = quantize_weights(module, dtype=dtype, group_size=group_size)
    elif kind == "transformers" and isinstance(parent.native, TextModel):
        if parent.native.onnx:
            raise UnsupportedModel(
                "weight-only quantization works on a text version's torch network, and this "
                "one runs an ONNX graph; quantize its torch parent, or use method='dynamic'"
            )
        network, done = quantize_weights(parent.native.network, dtype=dtype,
                                         group_size=group_size)  # fmt: skip
        child = replace(parent.native, network=network, _session=None)
    else:
        raise UnsupportedModel(
            f"weight-only quantization works on torch and transformers versions, not {kind}; "
            "an ONNX version takes method='dynamic' or 'static'"
        )
    return child, {"method": "weight-only", **done}
