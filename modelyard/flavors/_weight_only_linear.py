"""`WeightOnlyLinear`: a Linear layer whose weights are int8 (one scale per output channel) or
int4 (a scale and a zero per group of input columns), multiplied by torch's own CPU kernels.

The kernels are the ones torchao's `Int8WeightOnlyConfig` and its int4 CPU layout call
(`torch._weight_int8pack_mm`, `torch._weight_int4pack_mm_for_cpu`). Activations go through
them in bfloat16, whatever the model's float type: only that path of theirs is vectorized (in
float32 they run 10 to 100 times slower than a float32 matmul; in bfloat16 they beat it at
batch 1). The bias is added in the model's float type.
The stored form is plain: int8 weights as int8, int4 weights two to a byte (low nibble first)
as uint8, scales and zeros as float tensors. The kernel's own packing of int4 weights is made
from that at load (it is a layout of this torch build, not something to store).

This module imports torch; `_weight_only` imports it only when a weight-only model is made,
saved or loaded.
"""

from __future__ import annotations

from typing import Any

import torch

INT8 = "int8"
INT4 = "int4"
_INT4_MIDDLE = 8  # int4 values are 0..15; the kernel reads w = (q - 8) * scale + zero
COMPUTE = torch.bfloat16
_ALIGNMENT = 64  # what torch's CPU allocator gives every new tensor


class WeightOnlyLinear(torch.nn.Module):
    """`y = x @ dequantized(W).T + b` with W stored as int8 or int4.

    int8: `weight_int8` [out, in] int8, `weight_scale` [out]; W = weight_int8 * scale per row.
    int4: `weight_int4` [out, in/2] uint8 (two values a byte), `weight_scale` and `weight_zero`
    [out, in/group_size]; W = (q - 8) * scale + zero per group of `group_size` columns.
    """

    # Buffers, declared for the type checker (register_buffer makes them).
    weight_int8: torch.Tensor
    weight_int4: torch.Tensor
    weight_scale: torch.Tensor
    weight_zero: torch.Tensor
    bias: torch.Tensor | None
    _packed: torch.Tensor
    _scale: torch.Tensor

    def __init__(
        self,
        values: torch.Tensor,
        scale: torch.Tensor,
        *,
        zero: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        group_size: int | None = None,
    ) -> None:
        super().__init__()
        self.kind = INT8 if values.dtype == torch.int8 else INT4
        self.out_features = int(values.shape[0])
        self.in_features = int(values.shape[1]) * (1 if self.kind == INT8 else 2)
        self.group_size = group_size
        # The int8 kernel loads its operands with aligned vector loads: a tensor mapped from
        # a file (at any offset) gets memory of its own.
        self.register_buffer(f"weight_{self.kind}", _aligned(values))
        self.register_buffer("weight_scale", scale)
        if zero is not None:
            self.register_buffer("weight_zero", zero)
        self.register_buffer("bias", bias)
        # What the kernels take, made once here and never stored: bfloat16 scales (and zeros),
        # and for int4 the kernel's own packing of the weights.
        if zero is None:
            self.register_buffer("_scale", scale.to(COMPUTE), persistent=False)
        else:
            packed = torch._convert_weight_to_int4pack_for_cpu(unpack_int4(values), 1)
            self.register_buffer("_packed", packed, persistent=False)
            scales_and_zeros = torch.stack([scale.t(), zero.t()], dim=-1).to(COMPUTE)
            self.register_buffer("_scale", scales_and_zeros.contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = _aligned(x.reshape(-1, self.in_features).to(COMPUTE).contiguous())
        if self.kind == INT8:
            out = torch._weight_int8pack_mm(flat, self.weight_int8, self._scale)
        else:
            out = torch._weight_int4pack_mm_for_cpu(
                flat, self._packed, self.group_size or 0, self._scale
            )
        out = out.to(self.weight_scale.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        group = f", group_size={self.group_size}" if self.kind == INT4 else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, {self.kind}{group}"
        )


def from_linear(linear: torch.nn.Linear, kind: str, group_size: int | None) -> WeightOnlyLinear:
    """A weight-only copy of `linear`: int8 symmetric per output channel, or int4 asymmetric
    per group of `group_size` input columns (as torchao's int4 CPU layout quantizes)."""
    weight = linear.weight.detach()
    dtype = weight.dtype
    weight = weight.float()
    bias = None if linear.bias is None else linear.bias.detach().clone()
    if kind == INT8:
        scale = (weight.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny)
        values = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return WeightOnlyLinear(values, scale.to(dtype), bias=bias)
    if group_size is None:
        raise ValueError("int4 needs a group size")
    groups = weight.reshape(weight.shape[0], -1, group_size)
    low, high = groups.amin(dim=-1), groups.amax(dim=-1)
    scale = ((high - low) / 15).clamp(min=1e-6)
    zero = low + scale * _INT4_MIDDLE
    q = torch.round((groups - low[..., None]) / scale[..., None]).clamp(0, 15)
    values = pack_int4(q.reshape(weight.shape).to(torch.uint8))
    return WeightOnlyLinear(values, scale.to(dtype), zero=zero.to(dtype), bias=bias,
                            group_size=group_size)  # fmt: skip


def _aligned(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.data_ptr() % _ALIGNMENT == 0 else tensor.clone()


def pack_int4(values: torch.Tensor) -> torch.Tensor:
    """[out, in] values 0..15 as [out, in/2] bytes, the even column in the low nibble."""
    return (values[:, 0::2] | (values[:, 1::2] << 4)).contiguous()


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """[out, in/2] bytes back to [out, in] int32 values 0..15 (what the kernel's packer takes)."""
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([low, high], dim=-1).reshape(packed.shape[0], -1).to(torch.int32)


def kernels() -> dict[str, Any]:
    """Which of the two CPU kernels this torch has (both since torch 2.6)."""
    return {
        INT8: getattr(torch, "_weight_int8pack_mm", None),
        INT4: getattr(torch, "_weight_int4pack_mm_for_cpu", None),
    }
