"""Blob store benchmark: put/get throughput against a plain file copy, and dedup of ten variants.

    python bench/store.py [--size-mib 512] [--repeat 3] [--out bench/results/store.json]

Every figure is a median over `--repeat` runs, in one process, on one filesystem; the ratios
(ours / plain copy) are what to compare across machines, not the MB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelyard.store import LocalStore, restore_directory, store_directory

MIB = 1 << 20


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def median_time(
    repeat: int, prepare: Callable[[int], None], action: Callable[[int], object]
) -> float:
    """Median seconds of `action(i)`, each run after an untimed `prepare(i)`."""
    times = []
    for i in range(repeat):
        prepare(i)
        os.sync()  # start each run with no dirty pages left over from the one before
        times.append(timed(lambda i=i: action(i)))
    return statistics.median(times)


def random_file(path: Path, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with path.open("wb") as handle:
        for offset in range(0, size, 16 * MIB):
            handle.write(rng.bytes(min(16 * MIB, size - offset)))


def safetensors_file(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write float32 tensors in the safetensors layout (header length, JSON header, data)."""
    header: dict[str, object] = {}
    offset = 0
    for name, array in tensors.items():
        end = offset + array.nbytes
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, end]}
        offset = end
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        for array in tensors.values():
            handle.write(array.tobytes())


def model_tensors(total: int, count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.2, 1.8, count)
    sizes = (weights / weights.sum() * total / 4).astype(int)
    return {
        f"layer{i:03d}.weight": rng.standard_normal(n, dtype=np.float32)
        for i, n in enumerate(sizes)
    }


def throughput_rows(work: Path, size: int, repeat: int, kind: str) -> list[dict[str, object]]:
    source = work / f"src-{kind}"
    source.mkdir()
    name = "model.safetensors" if kind == "safetensors" else "weights.bin"
    if kind == "safetensors":
        safetensors_file(source / name, model_tensors(size, 64, seed=1))
    else:
        random_file(source / name, size)
    size = (source / name).stat().st_size
    stores: list[LocalStore] = []

    def fresh_store(i: int) -> None:
        shutil.rmtree(work / "store", ignore_errors=True)
        stores.append(LocalStore(work / "store"))

    def clear(path: Path) -> Callable[[int], None]:
        return lambda i: shutil.rmtree(path, ignore_errors=True)

    copy = median_time(repeat, clear(work / "copy"), lambda i: _copy(source / name, work / "copy"))
    put = median_time(repeat, fresh_store, lambda i: store_directory(stores[-1], source))
    manifest = store_directory(stores[-1], source)
    reput = median_time(repeat, lambda i: None, lambda i: store_directory(stores[-1], source))
    get = median_time(
        repeat, clear(work / "out"), lambda i: restore_directory(stores[-1], manifest, work / "out")
    )
    mb = size / 1e6
    rows = [
        _row(f"put {kind} ({size // MIB} MiB)", mb / put, mb / copy, "MB/s"),
        _row(f"get {kind} ({size // MIB} MiB)", mb / get, mb / copy, "MB/s"),
        _row(f"re-put {kind}, all blobs present", mb / reput, mb / copy, "MB/s"),
    ]
    shutil.rmtree(work / "store", ignore_errors=True)
    return rows


def _copy(source: Path, target_dir: Path) -> None:
    target_dir.mkdir()
    shutil.copyfile(source, target_dir / source.name)


def _row(case: str, ours: float, baseline: float, unit: str, goal: str = "") -> dict[str, object]:
    return {
        "case": case,
        "ours": ours,
        "baseline": baseline,
        "ratio": ours / baseline,
        "unit": unit,
        "goal": goal,
    }


def dedup_rows(work: Path, variants: int = 10, share: float = 0.05) -> list[dict[str, object]]:
    """Ten fine-tuned variants of a ~100 MiB model, each changing 5% of its ~100 tensors."""
    base = model_tensors(100 * MIB, 100, seed=2)
    rng = np.random.default_rng(3)
    names = sorted(base)
    rows = []
    for kind in ("safetensors", "raw"):
        store = LocalStore(work / f"dedup-{kind}")
        one = 0
        for variant in range(variants):
            tensors = dict(base)
            if variant:
                for name in rng.choice(names, size=round(share * len(names)), replace=False):
                    tensors[str(name)] = tensors[str(name)] + np.float32(1e-3)
            folder = work / f"variant-{kind}-{variant}"
            folder.mkdir()
            if kind == "safetensors":
                safetensors_file(folder / "model.safetensors", tensors)
            else:  # one raw file: only content-defined chunking can find what is shared
                with (folder / "weights.bin").open("wb") as handle:
                    for array in tensors.values():
                        handle.write(array.tobytes())
            (folder / "config.json").write_text(json.dumps({"variant": variant}))
            one = store_directory(store, folder).size
            shutil.rmtree(folder)
        stored = sum(info.size for info in store.blobs())
        goal = "<= 1.5x" if kind == "safetensors" else ""
        rows.append(
            {
                "case": f"10 variants, {kind}: stored / one model",
                "ours": stored / one,
                "baseline": float(variants),
                "ratio": (stored / one) / variants,
                "unit": "x one model",
                "goal": goal,
            }
        )
        shutil.rmtree(work / f"dedup-{kind}")
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    print(f"{'case':<44} {'ours':>10} {'baseline':>10} {'ratio':>7}  {'unit':<12} goal")
    for row in rows:
        print(
            f"{row['case']:<44} {row['ours']:>10.2f} {row['baseline']:>10.2f} "
            f"{row['ratio']:>7.2f}  {row['unit']:<12} {row['goal']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/store.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp:
        work = Path(tmp)
        rows = throughput_rows(work, args.size_mib * MIB, args.repeat, "random")
        rows += throughput_rows(work, args.size_mib * MIB, args.repeat, "safetensors")
        rows += dedup_rows(work)
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    environment = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "size_mib": args.size_mib,
        "repeat": args.repeat,
    }
    args.out.write_text(json.dumps({"environment": environment, "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
