"""Pruning rows: unstructured 50/80/90% with the stored size. A section of bench/optimize.py.

Each step prunes `mlp:1` (the digits MLP) through `yard.optimize.prune`; the pruned weights are
stored by their zeros (values plus a bitmask), so the size column follows the sparsity. Two
more rows time torch's CPU sparse CSR kernels (`weight.to_sparse_csr()`, `torch.sparse.mm`) on
the 80% and 90% children against their dense form, by the same alternating rounds the reports
use: "bytes" is then the CSR tensors' size (values, column indices, row pointers) beside the
dense weights, and these rows are a measurement only (serving runs the dense module).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    from bench.optimize import row
    from tests.optimize.models import train

    x_train, y_train = digits["x_train"], digits["y_train"]
    data = {"eval_data": (digits["x_test"], digits["y_test"]), "force": True}

    def finetune(module: Any) -> None:
        train(module, x_train, y_train, epochs=5)

    steps: list[tuple[str, Any]] = [
        ("prune 50% (torch)", lambda: yard.optimize.prune("mlp:1", sparsity=0.5, **data)),
        ("prune 80% + fine-tune", lambda: yard.optimize.prune(
            "mlp:1", sparsity=0.8, finetune=finetune, **data)),
        ("prune 90% (torch)", lambda: yard.optimize.prune("mlp:1", sparsity=0.9, **data)),
    ]  # fmt: skip
    results = [row("MLP (digits)", "mlp:1", label, step) for label, step in steps]
    for result in results[1:]:
        if "error" not in result:
            results.append(csr_row(yard, result, digits))
    return results


def csr_row(yard: Any, pruned: dict[str, Any], digits: dict[str, Any]) -> dict[str, Any]:
    """The pruned version run with CSR weights against itself dense, in the same process."""
    from modelyard.optimize._measure import latencies

    model = yard.load_model(pruned["version"])
    dense, sparse = Runner(model.native, csr=False), Runner(model.native, csr=True)
    x, y = digits["x_test"], digits["y_test"]
    b1 = latencies([dense, sparse], x, batch=1)
    b64 = latencies([dense, sparse], x, batch=64, calls=5)
    before = float(np.mean(dense.predict(x).argmax(1) == y))
    after = float(np.mean(sparse.predict(x).argmax(1) == y))
    return {
        "model": "MLP (digits)", "parent": pruned["version"],
        "step": f"{pruned['step']}: CSR kernels (not served)",
        "version": pruned["version"], "seconds": 0.0,
        "parent_bytes": dense.weight_bytes, "bytes": sparse.weight_bytes,
        "size_ratio": dense.weight_bytes / sparse.weight_bytes,
        "parent_p50_b1_ms": b1[0], "p50_b1_ms": b1[1], "speedup_b1": b1[0] / b1[1],
        "parent_p50_b64_ms": b64[0], "p50_b64_ms": b64[1], "speedup_b64": b64[0] / b64[1],
        "parent_metric": before, "metric": after, "metric_change": after - before,
        "accepted": abs(after - before) <= 0.01,
    }  # fmt: skip


class Runner:
    """The MLP's Linear/ReLU stack run by hand, its weights dense or sparse CSR."""

    def __init__(self, module: Any, *, csr: bool) -> None:
        import torch

        self.layers: list[tuple[str, Any, Any]] = []
        self.weight_bytes = 0
        for layer in module.layers:
            if isinstance(layer, torch.nn.Linear):
                weight = layer.weight.detach()
                with warnings.catch_warnings():  # "sparse CSR support is in beta"
                    warnings.simplefilter("ignore", UserWarning)
                    weight = weight.to_sparse_csr() if csr else weight.contiguous()
                self.layers.append(("linear", weight, layer.bias.detach()))
                self.weight_bytes += _bytes(weight)
            else:
                self.layers.append(("relu", None, None))
        self.csr = csr

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        out = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        with torch.inference_mode():
            for kind, weight, bias in self.layers:
                if kind == "relu":
                    out = torch.relu(out)
                elif self.csr:  # (W @ x^T)^T: the sparse operand on the left
                    out = torch.sparse.mm(weight, out.T).T + bias
                else:
                    out = torch.nn.functional.linear(out, weight, bias)
        return out.numpy()


def _bytes(tensor: Any) -> int:
    import torch

    if tensor.layout == torch.sparse_csr:  # its three arrays
        parts = (tensor.values(), tensor.col_indices(), tensor.crow_indices())
        return sum(part.numel() * part.element_size() for part in parts)
    return int(tensor.numel() * tensor.element_size())
