"""Blob store benchmark: put/get throughput against a plain file copy, and dedup of ten variants.

    python bench/store.py [--size-mib 512] [--repeat 3] [--out bench/results/store.json]
                          [--dir /tmp]

Everything runs in one process, in one temporary folder (under `--dir`), so the store, the
sources and the plain-copy baseline share a filesystem. Each timing is the median of `--repeat`
runs; nothing is dropped from the page cache, but `os.sync()` runs (untimed) before each run so
no run pays for the dirty pages of the one before. Timings on small VMs are noisy: compare the
ratio column (ours / baseline, measured side by side in the same run), not the MB/s.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from modelyard.store import LocalStore, Manifest, restore_directory, store_directory

MIB = 1 << 20
MB = 1e6

VARIANTS = 10
"""How many fine-tuned variants the dedup case stores."""

VARIANT_SHARE = 0.05
"""The share of the base model's tensors each variant changes."""

BASE_MIB = 100
"""Size of the dedup case's base model."""

BASE_TENSORS = 100
"""Number of tensors in the dedup case's base model."""


@dataclass(slots=True)
class Row:
    """One line of the table: our figure, the baseline's, and how they compare."""

    case: str
    ours: float
    baseline: float
    unit: str
    goal: str = ""
    peak_rss_mib: float | None = None
    note: str = ""
    runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """`ours / baseline`: for throughput, higher is better; for stored size, lower is."""
        return self.ours / self.baseline

    def as_json(self) -> dict[str, object]:
        """The row as a JSON object, ratio included."""
        return {**asdict(self), "ratio": self.ratio}


# Measuring


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (Linux: `/proc/self/clear_refs`), if allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


PEAK_RSS_RESETS = _reset_peak_rss()
"""Whether peak RSS is measured per run; if not, only growth past the process's old peak shows."""


@dataclass(slots=True)
class Sample:
    """One timed run: wall-clock seconds and how far the process's peak RSS rose above its start."""

    seconds: float
    rss_growth: int


def measure(action: Callable[[], object], prepare: Callable[[], object] | None = None) -> Sample:
    """Run `prepare()` untimed, flush dirty pages, then time `action()` and its peak RSS growth."""
    if prepare is not None:
        prepare()
    os.sync()
    _reset_peak_rss()
    before = _maxrss_bytes()
    began = time.perf_counter()
    action()
    seconds = time.perf_counter() - began
    return Sample(seconds, max(0, _maxrss_bytes() - before))


def median_seconds(samples: list[Sample]) -> float:
    """The median wall-clock time of `samples`."""
    return statistics.median(sample.seconds for sample in samples)


def peak_mib(samples: list[Sample]) -> float:
    """The largest RSS growth among `samples`, in MiB."""
    return max(sample.rss_growth for sample in samples) / MIB


# Test data


def write_random_file(path: Path, size: int, seed: int = 0) -> None:
    """Write `size` random (incompressible) bytes to `path`, 16 MiB at a time."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as handle:
        for offset in range(0, size, 16 * MIB):
            handle.write(rng.bytes(min(16 * MIB, size - offset)))


def model_tensors(total: int, count: int, seed: int) -> dict[str, torch.Tensor]:
    """About `total` bytes of random float32 tensors of varied 2-D shapes, `count` of them.

    The first one is an "embedding" three times the average size; the rest vary from a quarter
    to 1.75 times the average.
    """
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    weights = rng.uniform(0.25, 1.75, count)
    weights[0] = 3.0
    widths = rng.choice([256, 512, 1024, 2048, 4096], count)
    tensors = {}
    for i, (weight, width) in enumerate(zip(weights, widths, strict=True)):
        elements = total / 4 * weight / weights.sum()
        rows = max(1, round(elements / width))
        name = "embed.weight" if i == 0 else f"layers.{i:03d}.weight"
        tensors[name] = torch.randn(rows, int(width), generator=generator)
    return tensors


def folder_size(folder: Path) -> int:
    """Total bytes of the files under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# Throughput


def throughput_rows(
    work: Path, source: Path, label: str, repeat: int, *, many_blobs: bool
) -> list[Row]:
    """Put, re-put and get of the one-file folder `source`, each against a plain copy of the file.

    The copy and a put into a fresh store alternate, so both see the same machine state.

    Two effects of these VMs shape the order of work. Memory the guest has not touched lately is
    slow to fill (page cache included), so outputs are deleted as soon as they are measured, to
    keep the footprint flat. But deleting thousands of files right before creating thousands more
    slows the creation (ext4 without a journal skips inodes freed in the last minute), so with
    `many_blobs` each put gets a store of its own and all of them are deleted after the gets.
    """
    (file,) = source.iterdir()
    size = file.stat().st_size
    copy_dir, restored = work / "copy", work / "restored"
    stores = [LocalStore(work / f"store-{i}") for i in range(repeat)]
    store = stores[-1]
    manifests: list[Manifest] = []
    copies: list[Sample] = []
    puts: list[Sample] = []

    def fresh_copy_dir() -> None:
        shutil.rmtree(copy_dir, ignore_errors=True)
        copy_dir.mkdir()

    for i, each in enumerate(stores):
        copies.append(measure(lambda: shutil.copyfile(file, copy_dir / file.name), fresh_copy_dir))
        if i and not many_blobs:
            shutil.rmtree(stores[i - 1].root)
        puts.append(measure(lambda each=each: manifests.append(store_directory(each, source))))
    manifest = manifests[-1]
    blobs = sum(1 for _ in manifest.blob_digests())
    reputs = [measure(lambda: store_directory(store, source)) for _ in range(repeat)]

    def clear_restored() -> None:
        shutil.rmtree(restored, ignore_errors=True)

    gets = [
        measure(lambda: restore_directory(store, manifest, restored), clear_restored)
        for _ in range(repeat)
    ]
    if not filecmp.cmp(file, restored / file.name, shallow=False):
        raise AssertionError(f"restored {file.name} differs from the original")
    for path in (copy_dir, restored, *(each.root for each in stores)):
        shutil.rmtree(path, ignore_errors=True)

    def rates(samples: list[Sample]) -> list[float]:
        return [size / MB / sample.seconds for sample in samples]

    def row(case: str, samples: list[Sample], note: str = "") -> Row:
        ours, baseline = rates(samples), rates(copies)
        spread = (
            f"runs {min(ours):.0f}-{max(ours):.0f}, copy {min(baseline):.0f}-{max(baseline):.0f}"
        )
        note = f"{note}; {spread}" if note else spread
        return Row(
            case,
            size / MB / median_seconds(samples),
            size / MB / median_seconds(copies),
            "MB/s",
            peak_rss_mib=peak_mib(samples),
            note=note,
            runs=ours,
            baseline_runs=baseline,
        )

    return [
        row(f"put {label}", puts, f"{blobs} blobs, copy peak RSS +{peak_mib(copies):.0f} MiB"),
        row(f"re-put {label} (all blobs present)", reputs),
        row(f"get {label}", gets),
    ]


def random_rows(work: Path, size: int, repeat: int) -> list[Row]:
    """Throughput for a folder holding one random binary file of `size` bytes (cut by FastCDC)."""
    work = work / "random"
    source = work / "source"
    source.mkdir(parents=True)
    write_random_file(source / "weights.bin", size)
    label = f"random .bin {size // MIB} MiB"
    rows = throughput_rows(work, source, label, repeat, many_blobs=True)
    shutil.rmtree(work)
    return rows


def safetensors_rows(work: Path, size: int, repeat: int) -> list[Row]:
    """Throughput for a folder holding one ~`size`-byte safetensors file of 64 tensors."""
    work = work / "safetensors"
    source = work / "source"
    source.mkdir(parents=True)
    save_file(model_tensors(size, 64, seed=1), source / "model.safetensors")
    actual = (source / "model.safetensors").stat().st_size
    label = f"safetensors {actual / MIB:.0f} MiB"
    rows = throughput_rows(work, source, label, repeat, many_blobs=False)
    shutil.rmtree(work)
    return rows


# Dedup


def variant_models(
    base: dict[str, torch.Tensor], variants: int, share: float, seed: int
) -> list[dict[str, torch.Tensor]]:
    """`variants` fine-tunes of `base`, each with a distinct random subset of `share` of its
    tensors changed (same shapes and dtypes, so a safetensors header stays byte-identical)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    names = sorted(base)
    count = max(1, round(share * len(names)))
    seen: set[frozenset[str]] = set()
    models = []
    while len(models) < variants:
        subset = frozenset(str(name) for name in rng.choice(names, size=count, replace=False))
        if subset in seen:
            continue
        seen.add(subset)
        model = dict(base)
        for name in subset:
            tuned = base[name].clone()
            tuned.add_(torch.randn(tuned.shape, generator=generator), alpha=1e-3)
            model[name] = tuned
        models.append(model)
    return models


def write_variant(folder: Path, model: dict[str, torch.Tensor], fmt: str, index: int) -> None:
    """Write one variant's folder: its weights in `fmt` and a small config.json."""
    folder.mkdir()
    if fmt == "safetensors":
        save_file(model, folder / "model.safetensors")
    else:  # a pickle-in-zip checkpoint, which only content-defined chunking can deduplicate
        torch.save(model, folder / "model.pt")
    config = {"architectures": ["BenchModel"], "name": f"variant-{index}", "torch_dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def store_variants(
    work: Path, models: list[dict[str, torch.Tensor]], fmt: str
) -> tuple[LocalStore, list[Manifest]]:
    """Store every variant (written in `fmt`) into one fresh store; return it and the manifests.

    Each variant's folder is written, stored and deleted in turn; the store is left for the
    caller to delete.
    """
    store = LocalStore(work / f"variants-{fmt}")
    manifests = []
    for index, model in enumerate(models):
        folder = work / f"variant-{fmt}-{index}"
        write_variant(folder, model, fmt, index)
        manifests.append(store_directory(store, folder))
        if folder_size(folder) != manifests[-1].size:
            raise AssertionError(f"manifest size of {folder} differs from the folder's")
        shutil.rmtree(folder)
    return store, manifests


def dedup_rows(work: Path) -> list[Row]:
    """Ten fine-tuned variants of a ~100 MiB model, each changing 5% of its ~100 tensors.

    Reports the unique bytes stored (every blob in the store, manifests included) as a multiple of
    one model folder, beside what plain copies of the ten folders take.
    """
    base = model_tensors(BASE_MIB * MIB, BASE_TENSORS, seed=2)
    models = variant_models(base, VARIANTS, VARIANT_SHARE, seed=3)
    # Ideal: the base's tensors once, plus every changed tensor once.
    changed = sum(
        tensor.nbytes
        for model in models
        for name, tensor in model.items()
        if tensor is not base[name]
    )
    rows = []
    for fmt in ("safetensors", "pt"):
        store, manifests = store_variants(work, models, fmt)
        one = manifests[0].size
        stored = sum(info.size for info in store.blobs())
        copies = sum(manifest.size for manifest in manifests)
        blobs = len({digest for manifest in manifests for digest in manifest.blob_digests()})
        ideal = (one + changed) / one
        goal = "<= 1.5x" if fmt == "safetensors" else ""
        rows.append(
            Row(
                f"{VARIANTS} variants, {fmt}: stored / one model",
                stored / one,
                copies / one,
                "x model",
                goal,
                note=f"ideal {ideal:.3f}x; {blobs} unique blobs; model {one / MIB:.1f} MiB",
            )
        )
    return rows


# Report


def print_table(rows: list[Row]) -> None:
    """Print the rows as an aligned table."""
    header = (
        f"{'case':<46} {'ours':>9} {'baseline':>9} {'unit':<8} {'ratio':>6}  {'goal':<8} "
        f"{'peak RSS':>9}  note"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rss = "" if row.peak_rss_mib is None else f"+{row.peak_rss_mib:.0f} MiB"
        print(
            f"{row.case:<46} {row.ours:>9.2f} {row.baseline:>9.2f} {row.unit:<8} "
            f"{row.ratio:>6.3f}  {row.goal:<8} {rss:>9}  {row.note}"
        )


def filesystem(path: Path) -> str:
    """The filesystem type and mount point holding `path`, from /proc/mounts where there is one."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown filesystem"
    resolved = str(path.resolve())
    mounts = []
    for line in lines:
        _, mount, kind, *_ = line.split()
        if resolved == mount or resolved.startswith(mount.rstrip("/") + "/"):
            mounts.append((len(mount), mount, kind))
    if not mounts:
        return "unknown filesystem"
    _, mount, kind = max(mounts)
    return f"{kind} at {mount}"


def environment(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """What the figures depend on besides the code."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "size_mib": args.size_mib,
        "size_bytes": args.size_mib * MIB,
        "repeat": args.repeat,
        "workdir": str(work),
        "filesystem": filesystem(work),
        "peak_rss_per_run": PEAK_RSS_RESETS,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "variants": {"count": VARIANTS, "share": VARIANT_SHARE, "base_mib": BASE_MIB},
    }


def main() -> None:
    """Run every case, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="size of the big file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/store.json"))
    parser.add_argument("--dir", type=Path, default=None, help="where the temp folder goes")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-store-", dir=args.dir))
    try:
        env = environment(args, work)
        began = time.perf_counter()
        # Safetensors first: the random file's thousands of blobs are deleted after it, and
        # file creation right after that is slow on some filesystems.
        rows = safetensors_rows(work, args.size_mib * MIB, args.repeat)
        rows += random_rows(work, args.size_mib * MIB, args.repeat)
        rows += dedup_rows(work)
        env["total_seconds"] = round(time.perf_counter() - began, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"python {env['python']}, {env['cpu_count']} CPUs, {env['filesystem']}, ", end="")
    print(f"median of {args.repeat}; ratio = ours / baseline\n")
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"environment": env, "rows": [row.as_json() for row in rows]}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{env['total_seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
