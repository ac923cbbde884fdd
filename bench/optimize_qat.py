"""Quantization-aware training against post-training int8. A section of bench/optimize.py.

The model is the tests' case (tests/optimize/models.py `OutlierMLP`): a digits MLP whose first
layer holds one outlier weight, on a unit that never fires, so the float answers do not depend
on it, while per-tensor int8 rounds the whole layer by its step. Post-training int8 loses more
than the 1% tolerance; ten epochs of quantization-aware training (`finetune=`) win it back, and
both are stored in the same dynamic int8 format.

Latency is measured but not judged here (`max_slowdown=None`): at this width (64) int8 kernels
answer about 2x slower than float, which would refuse both rows for a reason that has nothing to
do with training (the wide MLP's "int8 dynamic (torch)" row shows where int8 pays off). The
verdict column is the accuracy tolerance alone, as the issue asks.
"""

from __future__ import annotations

from typing import Any

MODEL = "MLP with an outlier weight (digits)"


def rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    import torch

    from bench.optimize import row
    from tests.optimize.models import OutlierMLP, train

    x_train, y_train = digits["x_train"], digits["y_train"]
    torch.manual_seed(0)
    model = train(OutlierMLP(), x_train, y_train, epochs=20)
    ref = yard.log_model(model, name="outlier-mlp", input_example=digits["x_test"][:5],
                         options={"export": False, "init": {}}).ref  # fmt: skip
    data = {"eval_data": (digits["x_test"], digits["y_test"]), "force": True, "max_slowdown": None}

    def qat_epochs(module: Any) -> None:
        train(module, x_train, y_train, epochs=10, lr=1e-3)

    return [
        row(MODEL, ref, "int8 post-training", lambda: yard.optimize.quantize(ref, **data)),
        row(MODEL, ref, "int8 QAT (10 epochs)",
            lambda: yard.optimize.quantize(ref, finetune=qat_epochs, **data)),
    ]  # fmt: skip
