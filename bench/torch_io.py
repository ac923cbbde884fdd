"""Torch through the client: `log_model` against `torch.save` + put, `load_model` against
`safetensors.torch.load_file`.

    python bench/torch_io.py [--size-mib 1024] [--log-mb 100] [--repeat 5]
                             [--out bench/results/torch_io.json] [--dir /tmp]

Cases, each the median of `--repeat` runs, ours and the baseline alternating:

- **log_model**: `yard.log_model(module, input_example=x)` (the default path) of a ~`--log-mb` MB
  module of 50 Linear layers into a fresh home, against `torch.save(module.state_dict())` plus
  `store_directory(LocalStore(...))` of that file into a fresh store. Also shown: the same with
  `options={"export": True}` (a traced program).
- **load, new process**: `yard.load_model(ref)` of a `--size-mib` safetensors torch model in a
  fresh process (its first open of the cached folder hashes every file), against `load_file` of
  a plain copy of the same file in a fresh process; the imports (safetensors, the torch flavor)
  and the registry's opening are done before the clock starts.
- **load, same process**: a second `load_model` in a process that loaded it once, against
  `load_file` in the same process.

Both loads map the file, so pages are read when first touched: each load case is also timed up
to a read of every page of every tensor (one element per 4 KiB), the bytes a first forward pass
would need. Compare the ratio column (ours / baseline, measured side by side in the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from modelyard import Settings, Yard  # noqa: E402
from modelyard.store import LocalStore, store_directory  # noqa: E402

MB = 1e6
MIB = 1 << 20
LAYERS = 50
PAGE = 4096

# Run in a fresh process: prints the seconds of the load and of the load plus a read of every page.
LOADER = """
import sys, time, json
sys.path[:0] = {paths!r}
import torch
from safetensors.torch import load_file
from modelyard import Settings, Yard
import modelyard.flavors._torch  # the flavor's imports, as the baseline's are, before the clock
from torch_io import touch
yard = Yard(Settings(home={home!r}, user="bench", trusted_modules=["torch_io"])).open()
began = time.perf_counter()
if {ours!r}:
    tensors = yard.load_model({ref!r}).native.state_dict()
else:
    tensors = load_file({plain!r})
loaded = time.perf_counter()
touch(tensors)
print(json.dumps([loaded - began, time.perf_counter() - began]))
"""


class Wide(torch.nn.Module):
    """`layers` Linear layers of one width, about `size_mb` MB of float32 weights; the defaults
    make the ~100 MB module of the log_model case, rebuilt at load from its class."""

    def __init__(self, size_mb: float = 100.0, layers: int = LAYERS) -> None:
        super().__init__()
        width = int((size_mb * MB / 4 / layers) ** 0.5)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


def touch(tensors: dict[str, torch.Tensor]) -> float:
    """Read one element of every page of every tensor (fault the mapped file in)."""
    total = 0.0
    for tensor in tensors.values():
        flat = tensor.reshape(-1)
        step = max(1, PAGE // max(1, flat.element_size()))
        total += float(flat[::step].float().sum())
    return total


def timed(action: Any) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def median(values: list[float]) -> float:
    return statistics.median(values)


def log_case(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    from torch_io import Wide as ImportableWide  # this module, importable: rebuilt from its class

    model = ImportableWide(args.log_mb).eval()
    example = np.random.default_rng(0).random((2, model.layers[0].in_features), np.float32)
    runs: dict[str, list[float]] = {"default": [], "export": [], "baseline": []}
    for index in range(args.repeat):
        for kind, options in (("default", {}), ("export", {"export": True})):
            yard = Yard(Settings(home=work / f"log-{kind}-{index}", user="bench")).open()
            os.sync()
            log = partial(yard.log_model, model, name="bench", input_example=example,
                          options=options)  # fmt: skip
            runs[kind].append(timed(log))
            yard.close()
        folder = work / f"save-{index}"
        folder.mkdir()
        os.sync()

        def baseline() -> None:
            torch.save(model.state_dict(), folder / "model.pt")  # noqa: B023
            store_directory(LocalStore(work / f"store-{index}"), folder)  # noqa: B023

        runs["baseline"].append(timed(baseline))
        for path in work.glob(f"*-{index}"):
            shutil.rmtree(path)
    base = median(runs["baseline"])
    label = f"log_model of {args.log_mb:.0f} MB"
    return [
        row(f"{label} (default)", runs["default"], runs["baseline"], "<= 2x", base),
        row(f"{label} (export=True)", runs["export"], runs["baseline"], "", base),
    ]


def row(
    case: str, ours: list[float], baseline: list[float], goal: str, base: float
) -> dict[str, Any]:
    return {"case": case, "ours_s": median(ours), "baseline_s": base,
            "ratio": median(ours) / base, "goal": goal, "runs": ours,
            "baseline_runs": baseline}  # fmt: skip


def load_cases(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    from torch_io import Wide as ImportableWide

    home = work / "home"
    model = ImportableWide(args.size_mib * MIB / MB, LAYERS).eval()
    init = {"size_mb": args.size_mib * MIB / MB, "layers": LAYERS}
    with Yard(Settings(home=home, user="bench")) as yard:
        ref = yard.log_model(model, name="big", options={"init": init}).ref
        yard.download(ref, work / "download")
    del model
    plain = work / "plain.safetensors"
    shutil.copyfile(work / "download" / "model.safetensors", plain)
    shutil.rmtree(work / "download")
    fresh_process(home, ref, plain, ours=True)  # restores and verifies the cached folder
    fresh: dict[str, list[list[float]]] = {"ours": [], "unmarked": [], "baseline": []}
    for _ in range(args.repeat):
        for kind in fresh:
            if kind == "unmarked":  # a folder no process has verified: the open hashes it
                shutil.rmtree(home / "cache" / ".marks", ignore_errors=True)
            fresh[kind].append(fresh_process(home, ref, plain, ours=kind != "baseline"))
    same = same_process(home, ref, plain, args.repeat)
    label = f"load_model of {args.size_mib} MiB"
    rows = []
    cases = [("new process", fresh["ours"], fresh["baseline"], "<= 1.3x"),
             ("new process, unverified", fresh["unmarked"], fresh["baseline"], ""),
             ("same process", same["ours"], same["baseline"], "<= 1.3x")]  # fmt: skip
    for where, ours_runs, their_runs, goal in cases:
        for index, what in ((0, "load"), (1, "+ read every page")):
            ours, theirs = [r[index] for r in ours_runs], [r[index] for r in their_runs]
            # The goal is on the whole read: a bare mapping takes milliseconds either way.
            wanted = goal if index else ""
            rows.append(row(f"{label}, {where}: {what}", ours, theirs, wanted, median(theirs)))
    return rows


def fresh_process(home: Path, ref: str, plain: Path, *, ours: bool) -> list[float]:
    os.sync()
    script = LOADER.format(paths=[str(ROOT), str(BENCH)], home=str(home), ref=ref,
                           plain=str(plain), ours=ours)  # fmt: skip
    output = subprocess.run([sys.executable, "-c", script], check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    return [float(value) for value in json.loads(output.splitlines()[-1])]


def same_process(home: Path, ref: str, plain: Path, repeat: int) -> dict[str, list[list[float]]]:
    from safetensors.torch import load_file

    runs: dict[str, list[list[float]]] = {"ours": [], "baseline": []}
    with Yard(Settings(home=home, user="bench", trusted_modules=["torch_io"])) as yard:
        yard.load_model(ref)  # the first open in this process: hashed here, not timed
        for _ in range(repeat):
            for ours in (True, False):
                began = time.perf_counter()
                if ours:
                    tensors = yard.load_model(ref).native.state_dict()
                else:
                    tensors = load_file(str(plain))
                loaded = time.perf_counter()
                touch(tensors)
                runs["ours" if ours else "baseline"].append(
                    [loaded - began, time.perf_counter() - began]
                )
                del tensors
    return runs


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'case':<58} {'ours s':>8} {'base s':>8} {'ratio':>7} {'goal':>7}")
    print("-" * 92)
    for item in rows:
        print(f"{item['case']:<58} {item['ours_s']:>8.3f} {item['baseline_s']:>8.3f} "
              f"{item['ratio']:>6.2f}x {item['goal']:>7}")  # fmt: skip
    print("baselines: log_model: torch.save(state_dict) + LocalStore put of that file; "
          "load: safetensors.torch.load_file of a plain copy")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the loaded model")
    parser.add_argument("--log-mb", type=float, default=100.0, help="size of the logged model")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/torch_io.json")
    parser.add_argument("--dir", type=Path, default=None, help="where the temp folder goes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-torch-", dir=args.dir))
    try:
        began = time.perf_counter()
        rows = log_case(args, work) + load_cases(args, work)
        took = time.perf_counter() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)
    environment = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "size_mib": args.size_mib,
        "log_mb": args.log_mb,
        "repeat": args.repeat,
        "total_seconds": round(took, 1),
    }
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment, "rows": rows}, indent=2))
    print(f"\n{environment['total_seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
