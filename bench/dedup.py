"""Dedup benchmark: ten fine-tuned variants of a ~100 MB torch model, logged through the client.

    python bench/dedup.py [--size-mb 100] [--variants 10] [--share 0.05]
                          [--out bench/results/dedup.json] [--dir /tmp]

A stack of Linear layers (about 100 float32 tensors of varied shapes) is fine-tuned ten times,
each variant changing a distinct random 5% of the tensors in place, and each variant is logged
with `yard.log_model(module, name="bench", input_example=x)` (torch flavor: safetensors weights
plus an exported program holding no weights) into a fresh home. Reported: the bytes of every blob
in the store, manifests included, as a multiple of one model's folder, beside ten plain copies
(10x); the goal is 1.6x. Also the time of each `log_model` against `torch.save` of the same
module to a file on the same filesystem (ratio = ours / baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelyard import Settings, Yard  # noqa: E402
from modelyard.flavors import _torch, save_model  # noqa: E402

_ = _torch  # registers the torch flavor
MB = 1e6
GOAL = 1.6


class Stack(torch.nn.Module):
    """Linear layers of varied widths with a ReLU between them: `layers` weights and biases."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(inputs, outputs)
            for inputs, outputs in zip(widths[:-1], widths[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def base_model(size_mb: float, layers: int, seed: int) -> Stack:
    """About `size_mb` MB of float32 weights in `layers` Linear layers (2 tensors each)."""
    rng = np.random.default_rng(seed)
    shape = rng.uniform(0.5, 1.5, layers + 1)  # widths vary by up to 3x around the mean
    mean = np.sqrt(size_mb * MB / 4 / float(np.sum(shape[:-1] * shape[1:])))
    widths = [max(8, int(mean * s)) for s in shape]
    torch.manual_seed(seed)
    return Stack(widths).eval()


def variant_subsets(names: list[str], variants: int, share: float, seed: int) -> list[list[str]]:
    """`variants` distinct random subsets of `share` of the tensor names."""
    rng = np.random.default_rng(seed)
    count = max(1, round(share * len(names)))
    subsets: list[list[str]] = []
    while len(subsets) < variants:
        subset = sorted(str(name) for name in rng.choice(names, size=count, replace=False))
        if subset not in subsets:
            subsets.append(subset)
    return subsets


def fine_tune(model: Stack, base: dict[str, torch.Tensor], subset: list[str], seed: int) -> None:
    """Reset `model` to `base`, then nudge the tensors in `subset` in place (same shapes)."""
    generator = torch.Generator().manual_seed(seed)
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in parameters.items():
            tensor.copy_(base[name])
        for name in subset:
            noise = torch.randn(parameters[name].shape, generator=generator)
            parameters[name].add_(noise, alpha=1e-3)


def folder_bytes(folder: Path) -> int:
    """Total bytes of the files under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    model = base_model(args.size_mb, args.layers, seed=0)
    base = {name: tensor.detach().clone() for name, tensor in model.named_parameters()}
    names = sorted(base)
    example = np.random.default_rng(1).random((2, model.layers[0].in_features), np.float32)
    save_model(model, work / "one", input_example=example)
    one = folder_bytes(work / "one")
    weights = (work / "one" / "model.safetensors").stat().st_size
    subsets = variant_subsets(names, args.variants, args.share, seed=2)
    yard = Yard(Settings(home=work / "home", user="bench"))
    ours, baseline = [], []
    for index, subset in enumerate(subsets):
        fine_tune(model, base, subset, seed=100 + index)
        began = time.perf_counter()
        yard.log_model(model, name="bench", input_example=example)
        ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        torch.save(model, work / "baseline.pt")
        baseline.append(time.perf_counter() - began)
        (work / "baseline.pt").unlink()
    stored = sum(blob.size for blob in yard.store.blobs())
    yard.close()
    changed = {name for subset in subsets for name in subset}
    changed_bytes = sum(
        base[name].numel() * 4 for subset in subsets for name in subset
    )  # every changed tensor once, on top of the base
    ideal = one + changed_bytes
    unchanged_everywhere = set(names) - changed
    return {
        "tensors": len(names),
        "tensors_changed_per_variant": len(subsets[0]),
        "tensors_changed_in_some_variant": len(changed),
        "tensors_never_changed": len(unchanged_everywhere),
        "model_folder_bytes": one,
        "weights_bytes": weights,
        "program_bytes": (work / "one" / "model.pt2").stat().st_size,
        "stored_bytes": stored,
        "plain_copy_bytes": one * args.variants,
        "stored_ratio": stored / one,
        "plain_copy_ratio": float(args.variants),
        "ideal_ratio": ideal / one,
        "goal_ratio": GOAL,
        "log_model_seconds": ours,
        "torch_save_seconds": baseline,
        "log_model_median_s": statistics.median(ours),
        "torch_save_median_s": statistics.median(baseline),
        "time_ratio": statistics.median(ours) / statistics.median(baseline),
    }


def print_report(result: dict[str, object], variants: int) -> None:
    one = float(result["model_folder_bytes"])
    print(f"{'case':<44} {'bytes':>14} {'x one model':>12}")
    print("-" * 72)
    for label, value in (
        ("one model folder", one),
        (f"{variants} plain copies", result["plain_copy_bytes"]),
        (f"{variants} variants in modelyard (all blobs)", result["stored_bytes"]),
        ("ideal: base + every changed tensor once", result["ideal_ratio"] * one),
    ):
        print(f"{label:<44} {float(value):>14,.0f} {float(value) / one:>11.3f}x")
    verdict = "met" if result["stored_ratio"] <= GOAL else "MISSED"
    print(f"goal <= {GOAL}x: {verdict}\n")
    print(f"{'timing (median of ' + str(variants) + ')':<44} {'seconds':>14} {'ratio':>12}")
    print("-" * 72)
    print(f"{'yard.log_model(module, input_example=x)':<44} "
          f"{result['log_model_median_s']:>14.3f} {result['time_ratio']:>11.2f}x")  # fmt: skip
    print(f"{'torch.save(module) (baseline)':<44} {result['torch_save_median_s']:>14.3f} "
          f"{1.0:>11.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0, help="size of the base model")
    parser.add_argument("--layers", type=int, default=50, help="Linear layers (2 tensors each)")
    parser.add_argument("--variants", type=int, default=10)
    parser.add_argument("--share", type=float, default=0.05, help="share of tensors changed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/dedup.json")
    parser.add_argument("--dir", type=Path, default=None, help="where the temp folder goes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-dedup-", dir=args.dir))
    try:
        began = time.perf_counter()
        result = run(args, work)
        took = time.perf_counter() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)
    environment = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "size_mb": args.size_mb,
        "layers": args.layers,
        "variants": args.variants,
        "share": args.share,
        "total_seconds": round(took, 1),
    }
    print_report(result, args.variants)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment, "result": result}, indent=2))
    print(f"\n{environment['total_seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
