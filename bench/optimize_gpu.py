"""float16 against float32 on a GPU: the version `yard.optimize.quantize(dtype="float16")` makes,
beside its float32 parent, both loaded back from the registry and moved to CUDA.

    python bench/optimize_gpu.py [--out bench/results/optimize_gpu.json]

Models: the digits MLP of bench/optimize.py (64 -> 512 x3 -> 10) and a wide one (64 -> 4096 x4
-> 10), trained briefly on scikit-learn's digits. Throughput is rows per second of the module's
forward pass on inputs already on the GPU (timed with CUDA events, median of 50 runs after 10
warm-ups), for batches of 1 to 8,192 rows; accuracy is measured on the GPU for both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCHES = (1, 64, 1024, 8192)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "optimize_gpu.json"
    )
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark needs a GPU")
    from sklearn.datasets import load_digits

    from modelyard import Settings, Yard
    from tests.optimize.models import DigitsMLP, train

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as home, Yard(Settings(home=home)) as yard:
        for label, hidden, depth, epochs in (("MLP 512x3", 512, 3, 30), ("MLP 4096x4", 4096, 4, 5)):
            model = train(DigitsMLP(hidden=hidden, depth=depth), x[:1200], y[:1200], epochs=epochs)
            name = f"mlp{hidden}"
            init = {"hidden": hidden, "depth": depth}
            options = {"export": False, "init": init}
            yard.log_model(model, name=name, input_example=x[:5], options=options)
            half = yard.optimize.quantize(f"{name}:1", eval_data=(x[1200:], y[1200:]),
                                          dtype="float16", force=True)  # fmt: skip
            parent = yard.load_model(f"{name}:1").native.cuda()
            child = yard.load_model(half.version.ref).native.cuda()
            test = torch.from_numpy(x[1200:]).cuda()
            with torch.inference_mode():
                accuracy = [
                    float((m(test.to(dtype)).argmax(1).cpu().numpy() == y[1200:]).mean())
                    for m, dtype in ((parent, torch.float32), (child, torch.float16))
                ]
            for batch in BATCHES:
                fp32 = _throughput(parent, batch, torch.float32)
                fp16 = _throughput(child, batch, torch.float16)
                rows.append({
                    "model": label, "batch": batch, "fp32_rows_s": fp32, "fp16_rows_s": fp16,
                    "ratio": fp16 / fp32, "fp32_accuracy": accuracy[0],
                    "fp16_accuracy": accuracy[1], "size_ratio": half.report.size_ratio,
                })  # fmt: skip
    device = torch.cuda.get_device_name()
    print(f"device: {device}, torch {torch.__version__}\n")
    print("| model | batch | fp32 rows/s | fp16 rows/s | fp16 / fp32 | accuracy fp32 | fp16 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['batch']:,} | {r['fp32_rows_s']:,.0f} "
            f"| {r['fp16_rows_s']:,.0f} | {r['ratio']:.2f} | {r['fp32_accuracy']:.4f} "
            f"| {r['fp16_accuracy']:.4f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": device, "torch": torch.__version__, "rows": rows},
                                   indent=2) + "\n")  # fmt: skip
    print(f"\nwrote {args.out}")


def _throughput(module: Any, batch: int, dtype: Any) -> float:
    import torch

    inputs = torch.rand(batch, 64, device="cuda", dtype=dtype)
    times = []
    with torch.inference_mode():
        for _ in range(10):
            module(inputs)
        for _ in range(50):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            module(inputs)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    return batch / statistics.median(times)


if __name__ == "__main__":
    main()
