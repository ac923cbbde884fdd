"""Blob store benchmark: put/get throughput against a plain file copy; ten variants against peers.

    python bench/store.py [--size-mib 1024] [--repeat 3] [--variant-mib 100] [--[no-]peers]
                          [--quick] [--out bench/results/store.json] [--dir /tmp]

Everything runs in one temporary folder (under `--dir`), so the store, the sources and the
plain-copy baseline share a filesystem. Each timing is the median of `--repeat`
runs; nothing is dropped from the page cache, but `os.sync()` runs (untimed) before each run so
no run pays for the dirty pages of the one before. Timings on small VMs are noisy: compare the
ratio column (ours / baseline, measured side by side in the same run), not the MB/s.

The ten-variant workload (`variants.py`) also runs through our CLI, DVC and restic as
subprocesses (`peers.py`), each variant folder written once and then stored by each tool in
turn. `--quick` is a smoke run (64 MiB, one run, 16 MiB variants, peers skipped unless
`--peers`).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from measuring import PEAK_RSS_RESETS, Sample, measure, median_seconds, peak_mib, write_random_file
from peers import CLI, PEERS, Peer, find_peers
from safetensors.torch import save_file
from variants import Tally, store_variants, variant_models

from modelyard.store import LocalStore, Manifest, restore_directory, store_directory

MIB = 1 << 20
MB = 1e6

VARIANTS = 10
"""How many fine-tuned variants the dedup case stores."""

VARIANT_SHARE = 0.05
"""The share of the base model's tensors each variant changes."""

BASE_MIB = 100
"""Size of the dedup case's base model (`--variant-mib`)."""

BASE_TENSORS = 100
"""Number of tensors in the dedup case's base model."""


GOALS = {"put": ">= 0.5x", "re-put": ">= 1x", "get": ">= 0.7x"}
"""Issue 15's throughput goals, as ratios against the plain copy in the same run."""

COMPARISONS = {"<": float.__lt__, "<=": float.__le__, ">=": float.__ge__}


@dataclass(slots=True)
class Row:
    """One line of the table: our figure, the baseline's, and how they compare.

    `goal` reads `"<op> <number>x"` and bounds the ratio, or our own figure when `goal_on` is
    `"ours"`. A figure that could not be had (a peer that could not run, or our command line when
    the peers are skipped) is `None`, and the note says why.
    """

    case: str
    ours: float | None
    baseline: float | None
    unit: str
    goal: str = ""
    goal_on: str = "ratio"
    peak_rss_mib: float | None = None
    note: str = ""
    runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """`ours / baseline`: for throughput, higher is better; for size and time, lower is."""
        if self.ours is None or self.baseline is None:
            return None
        return self.ours / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the goal is met; `None` with no goal or nothing to compare."""
        if not self.goal:
            return None
        op, limit = self.goal.split()
        value = self.ours if self.goal_on == "ours" else self.ratio
        return None if value is None else COMPARISONS[op](value, float(limit.rstrip("x")))

    def as_json(self) -> dict[str, object]:
        """The row as a JSON object, ratio and goal check included."""
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


# Test data


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

    def put(into: LocalStore) -> None:
        manifests.append(store_directory(into, source))

    for i, each in enumerate(stores):
        copies.append(measure(lambda: shutil.copyfile(file, copy_dir / file.name), fresh_copy_dir))
        if i and not many_blobs:
            shutil.rmtree(stores[i - 1].root)
        puts.append(measure(partial(put, each)))
    manifest = manifests[-1]
    blobs = sum(1 for _ in manifest.blob_digests())
    settle(store, file)
    reputs = [measure(lambda: store_directory(store, source)) for _ in range(repeat)]
    twin = work / "twin"

    def fresh_twin() -> None:
        # The same bytes in a new file (new inode, new ctime): no stat-cache entry applies.
        shutil.rmtree(twin, ignore_errors=True)
        twin.mkdir()
        shutil.copyfile(file, twin / file.name)

    rehashes = [measure(lambda: store_directory(store, twin), fresh_twin) for _ in range(repeat)]
    shutil.rmtree(twin)

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

    def row(kind: str, case: str, samples: list[Sample], note: str = "") -> Row:
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
            GOALS[kind],
            peak_rss_mib=peak_mib(samples),
            note=note,
            runs=ours,
            baseline_runs=baseline,
        )

    return [
        row("put", f"put {label}", puts, f"{blobs} blobs, copy +{peak_mib(copies):.0f} MiB RSS"),
        row("re-put", f"re-put {label} (same file: stat-cache hit)", reputs),
        row(
            "re-put",
            f"re-put {label} (same bytes, new file: every byte read and hashed)",
            rehashes,
        ),
        row("get", f"get {label}", gets),
    ]


def settle(store: LocalStore, file: Path) -> None:
    """Make sure `store` has recorded `file` in its stat cache, so the same-file re-put is a
    cache hit: a file changed moments before it was read is not recorded (it might change again
    within the same clock tick), so store it again once it has settled."""
    for _ in range(20):
        if store.stat_cache().lookup(file, file.stat()) is not None:
            return
        time.sleep(0.5)
        store_directory(store, file.parent)
    raise AssertionError(f"{file} was never recorded in the stat cache")


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


def _seconds(result: Tally | str) -> float | None:
    return None if isinstance(result, str) else sum(result.seconds)


def _calls(result: Tally | str) -> list[float]:
    return [] if isinstance(result, str) else result.seconds


def peer_rows(
    label: str,
    one: int,
    ours: Tally,
    cli: Tally | str,
    name: str,
    peer: Tally | str,
    startups: dict[str, float],
) -> list[Row]:
    """Bytes stored and wall time, ours (in-process, and as CLI calls) against one peer.

    A tool that did not run leaves its figure empty and says why in the note. `startups` holds
    each tool's no-op call time, which every one of its calls pays again.
    """
    goal = "< 1x" if name == "DVC" else ""  # the issue: fewer bytes than DVC, faster than both
    if isinstance(peer, str):
        stored_note = time_note = f"no {name} figures: {peer}"
        peer_stored = None
    else:
        stored_note = f"{name} {peer.stored / MIB:.1f} MiB, ours {ours.stored / MIB:.1f} MiB"
        time_note = f"{len(peer.seconds)} calls to {name} ({startups[name]:.2f} s startup each)"
        peer_stored = peer.stored / one
    if isinstance(cli, str):
        cli_note = f"no {CLI} figures: {cli}"
    else:
        cli_note = f"a `modelyard store put` per variant ({startups[CLI]:.2f} s startup each)"
    return [
        Row(f"{label}: stored / one model, vs {name}", ours.stored / one, peer_stored,
            "x model", goal, note=stored_note),
        Row(f"{label}: wall time, vs {name}", sum(ours.seconds), _seconds(peer), "s", "< 1x",
            note=f"ours in-process; {time_note}", runs=ours.seconds, baseline_runs=_calls(peer)),
        Row(f"{label}: wall time as CLI calls, vs {name}", _seconds(cli), _seconds(peer), "s",
            "< 1x", note=f"{cli_note}; {time_note}", runs=_calls(cli),
            baseline_runs=_calls(peer)),
    ]  # fmt: skip


def dedup_rows(work: Path, base_mib: int, peers: dict[str, Peer | str]) -> list[Row]:
    """Ten fine-tuned variants of a ~`base_mib` MiB model, each changing 5% of its ~100 tensors.

    Reports the bytes on disk of our store (every file under its root) as a multiple of one
    model folder, beside what plain copies of the ten folders take; then the bytes stored and
    the wall time of ours against each peer, all on the same folders.
    """
    base = model_tensors(base_mib * MIB, BASE_TENSORS, seed=2)
    models = variant_models(base, VARIANTS, VARIANT_SHARE, seed=3)
    # Ideal: the base's tensors once, plus every changed tensor once.
    changed = sum(
        tensor.nbytes
        for model in models
        for name, tensor in model.items()
        if tensor is not base[name]
    )
    rows = []
    startups = {
        name: peer.startup_seconds for name, peer in peers.items() if not isinstance(peer, str)
    }

    def timer(action: Callable[[], object]) -> float:
        return measure(action).seconds

    for fmt in ("safetensors", "pt"):
        ours, results = store_variants(work, models, fmt, peers, timer=timer)
        tally = results.pop(ours.name)
        if isinstance(tally, str):  # ours never degrades to a reason; this is a bug
            raise AssertionError(tally)
        manifests = ours.manifests
        one = manifests[0].size
        blob_bytes = sum(info.size for info in ours.store.blobs())
        copies = sum(manifest.size for manifest in manifests)
        blobs = len({digest for manifest in manifests for digest in manifest.blob_digests()})
        label = f"{VARIANTS} variants, {fmt}"
        rows.append(
            Row(
                f"{label}: stored / one model",
                tally.stored / one,
                copies / one,
                "x model",
                "<= 1.5x" if fmt == "safetensors" else "",
                goal_on="ours",
                note=(
                    f"ideal {(one + changed) / one:.3f}x; {blobs} unique blobs, "
                    f"{blob_bytes / one:.3f}x; model {one / MIB:.1f} MiB"
                ),
            )
        )
        cli = results[CLI]
        for name in PEERS:
            rows += peer_rows(label, one, tally, cli, name, results[name], startups)
        for path in work.glob(f"*-{fmt}*"):  # every tool's store for this format, and the data
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    return rows


# Report


def print_table(rows: list[Row]) -> None:
    """Print the rows as an aligned table."""
    header = (
        f"{'case':<60} {'ours':>9} {'baseline':>9} {'unit':<8} {'ratio':>6}  {'goal':<8} "
        f"{'met':<4} {'peak RSS':>9}  note"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rss = "" if row.peak_rss_mib is None else f"+{row.peak_rss_mib:.0f} MiB"
        ours = "n/a" if row.ours is None else f"{row.ours:.2f}"
        baseline = "n/a" if row.baseline is None else f"{row.baseline:.2f}"
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.3f}"
        met = {None: "n/a" if row.goal else "", True: "yes", False: "NO"}[row.met]
        print(
            f"{row.case:<60} {ours:>9} {baseline:>9} {row.unit:<8} {ratio:>6}  "
            f"{row.goal:<8} {met:<4} {rss:>9}  {row.note}"
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


def environment(
    args: argparse.Namespace, work: Path, peers: dict[str, Peer | str]
) -> dict[str, object]:
    """What the figures depend on besides the code."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "size_mib": args.size_mib,
        "size_bytes": args.size_mib * MIB,
        "repeat": args.repeat,
        "quick": args.quick,
        "workdir": str(work),
        "filesystem": filesystem(work),
        "peak_rss_per_run": PEAK_RSS_RESETS,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "variants": {"count": VARIANTS, "share": VARIANT_SHARE, "base_mib": args.variant_mib},
        "peers": {
            name: {"unavailable": peer} if isinstance(peer, str) else peer.describe()
            for name, peer in peers.items()
        },
    }


def parse_args() -> argparse.Namespace:
    """The command line, with `--quick`'s smaller defaults filled in where not given."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, help="size of the big files (1024; quick 64)")
    parser.add_argument("--repeat", type=int, help="runs per timing, median (3; quick 1)")
    parser.add_argument("--variant-mib", type=int, help="variants' base model (100; quick 16)")
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        help="run DVC and restic on the variants (default: yes; with --quick: no)",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench/results/store.json"))
    parser.add_argument("--dir", type=Path, default=None, help="where the temp folder goes")
    args = parser.parse_args()
    defaults = (64, 1, 16, False) if args.quick else (1024, 3, BASE_MIB, True)
    for name, default in zip(("size_mib", "repeat", "variant_mib", "peers"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def main() -> None:
    """Run every case, print the table and write the JSON."""
    args = parse_args()
    if args.peers:
        peers = find_peers()
    else:
        peers = {name: "skipped (--quick without --peers)" for name in (*PEERS, CLI)}
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-store-", dir=args.dir))
    try:
        env = environment(args, work, peers)
        began = time.perf_counter()
        # Safetensors first: the random file's thousands of blobs are deleted after it, and
        # file creation right after that is slow on some filesystems.
        rows = safetensors_rows(work, args.size_mib * MIB, args.repeat)
        rows += random_rows(work, args.size_mib * MIB, args.repeat)
        rows += dedup_rows(work, args.variant_mib, peers)
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
