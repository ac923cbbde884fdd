"""S3 store benchmark: S3Store put/get against plain boto3 upload_file/download_file.

    python bench/store_s3.py [--size-mib 1024] [--repeat 3] [--out bench/results/store_s3.json]
                             [--endpoint URL] [--bucket NAME] [--dir /tmp]

Credentials and defaults come from MODELYARD_TEST_S3_ENDPOINT_URL, MODELYARD_TEST_S3_BUCKET,
MODELYARD_TEST_S3_ACCESS_KEY_ID and MODELYARD_TEST_S3_SECRET_ACCESS_KEY (`source
/tmp/mys/env.sh`, or what scripts/test exports). Both sides use one boto3 client, built by
`S3Store.from_settings`, so they share its configuration; boto3's side uses its default
TransferConfig. Ours and boto3's runs alternate; each figure is the median of `--repeat`.
Compare the ratio column (ours / boto3, measured side by side), not the MB/s.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import boto3
import numpy as np
import torch
from measuring import Sample, measure, write_random_file
from safetensors.torch import save_file

from modelyard import Settings
from modelyard.store import S3Store, restore_directory, store_directory

MIB = 1 << 20
MB = 1e6
GOAL = 0.8
"""The issue's goal: at least this share of boto3's throughput."""


@dataclass(slots=True)
class Row:
    """One line of the table: our throughput, boto3's, and how they compare."""

    case: str
    ours: float
    boto3: float
    peak_rss_mib: float
    note: str = ""
    runs: list[float] = field(default_factory=list)
    boto3_runs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """`ours / boto3`; higher is better."""
        return self.ours / self.boto3

    def as_json(self) -> dict[str, object]:
        """The row as a JSON object, ratio and goal included."""
        return {**asdict(self), "ratio": self.ratio, "goal": f">= {GOAL}x"}


# Test data


def write_safetensors(path: Path, total: int, count: int = 64, seed: int = 1) -> None:
    """About `total` bytes of random float32 tensors of varied widths, `count` of them."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    weights = rng.uniform(0.25, 1.75, count)
    weights[0] = 3.0
    widths = rng.choice([256, 512, 1024, 2048, 4096], count)
    tensors = {}
    for i, (weight, width) in enumerate(zip(weights, widths, strict=True)):
        rows = max(1, round(total / 4 * weight / weights.sum() / width))
        tensors[f"layers.{i:03d}.weight"] = torch.randn(rows, int(width), generator=generator)
    save_file(tensors, path)


# The cases


def wipe(store: S3Store, prefix: str) -> None:
    """Delete every object under `prefix`."""
    pages = store.client.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=prefix
    )
    for page in pages:
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            store.client.delete_objects(Bucket=store.bucket, Delete={"Objects": keys})


def file_rows(base: S3Store, work: Path, file: Path, label: str, repeat: int) -> list[Row]:
    """Put and get of `file`, as one blob and as a folder, each against boto3 (alternating)."""
    size = file.stat().st_size
    plain = f"{base.prefix}/plain/{file.name}"
    out = work / "out"
    samples: dict[str, list[Sample]] = {}

    def fresh() -> S3Store:
        return S3Store(
            base.bucket, prefix=f"{base.prefix}/{uuid.uuid4().hex[:8]}", client=base.client
        )

    def clear_out() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()

    def run(case: str, action: Callable[[], object], prepare: Callable[[], object]) -> None:
        samples.setdefault(case, []).append(measure(action, prepare))

    def put_blob(store: S3Store) -> None:
        with file.open("rb") as handle:
            store.put(handle)

    def get_blob(store: S3Store, digest: str) -> None:
        with (out / file.name).open("wb") as handle:
            for piece in store.get(digest):
                handle.write(piece)

    blob_store, folder_store = fresh(), fresh()
    manifest = None
    for _ in range(repeat):
        run("boto3 put", lambda: base.client.upload_file(str(file), base.bucket, plain), clear_out)
        run("put blob", lambda: put_blob(blob_store), lambda: wipe(blob_store, blob_store.prefix))
        run(
            "put folder",
            lambda: store_directory(folder_store, file.parent),
            lambda: wipe(folder_store, folder_store.prefix),
        )
    manifest = store_directory(folder_store, file.parent)  # present already: cheap
    with file.open("rb") as handle:
        digest = blob_store.put(handle)
    for _ in range(repeat):
        run(
            "boto3 get",
            lambda: base.client.download_file(base.bucket, plain, str(out / file.name)),
            clear_out,
        )
        run("get blob", lambda: get_blob(blob_store, digest), clear_out)
        if not filecmp.cmp(file, out / file.name, shallow=False):
            raise AssertionError(f"{file.name} read back from one blob differs")
        run(
            "get folder",
            lambda: restore_directory(folder_store, manifest, out / "folder"),
            clear_out,
        )
        if not filecmp.cmp(file, out / "folder" / file.name, shallow=False):
            raise AssertionError(f"{file.name} restored from the folder differs")
    shutil.rmtree(out, ignore_errors=True)
    blobs = sum(1 for _ in manifest.blob_digests())
    return [
        row(f"put {label}, one blob", samples["put blob"], samples["boto3 put"], size),
        row(
            f"put {label}, store_directory",
            samples["put folder"],
            samples["boto3 put"],
            size,
            f"{blobs} blobs",
        ),
        row(f"get {label}, one blob", samples["get blob"], samples["boto3 get"], size),
        row(
            f"get {label}, restore_directory",
            samples["get folder"],
            samples["boto3 get"],
            size,
            f"{blobs} blobs",
        ),
    ]


def row(case: str, ours: list[Sample], theirs: list[Sample], size: int, note: str = "") -> Row:
    """A table row from our samples and boto3's, with the spread of each in the note."""
    rates = [size / MB / sample.seconds for sample in ours]
    baseline = [size / MB / sample.seconds for sample in theirs]
    spread = (
        f"runs {min(rates):.0f}-{max(rates):.0f}, boto3 {min(baseline):.0f}-{max(baseline):.0f}"
    )
    return Row(
        case,
        size / MB / statistics.median(sample.seconds for sample in ours),
        size / MB / statistics.median(sample.seconds for sample in theirs),
        max(sample.rss_growth for sample in ours) / MIB,
        f"{note}; {spread}" if note else spread,
        rates,
        baseline,
    )


# Report


def print_table(rows: list[Row]) -> None:
    """Print the rows as an aligned table."""
    header = (
        f"{'case':<44} {'ours MB/s':>10} {'boto3 MB/s':>10} {'ratio':>6}  {'goal':<8} "
        f"{'peak RSS':>9}  note"
    )
    print(header)
    print("-" * len(header))
    for each in rows:
        print(
            f"{each.case:<44} {each.ours:>10.1f} {each.boto3:>10.1f} {each.ratio:>6.3f}  "
            f"{'>= 0.8x':<8} {f'+{each.peak_rss_mib:.0f} MiB':>9}  {each.note}"
        )


def main() -> None:
    """Run every case, print the table and write the JSON."""
    env = os.environ.get
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of each file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/store_s3.json"))
    parser.add_argument("--dir", type=Path, default=None, help="where the temp folder goes")
    parser.add_argument("--endpoint", default=env("MODELYARD_TEST_S3_ENDPOINT_URL"))
    parser.add_argument("--bucket", default=env("MODELYARD_TEST_S3_BUCKET", "modelyard-test"))
    parser.add_argument("--access-key", default=env("MODELYARD_TEST_S3_ACCESS_KEY_ID"))
    parser.add_argument("--secret-key", default=env("MODELYARD_TEST_S3_SECRET_ACCESS_KEY"))
    args = parser.parse_args()
    if not args.endpoint:
        parser.error("give --endpoint or set MODELYARD_TEST_S3_ENDPOINT_URL")

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        store_url=f"s3://{args.bucket}/{prefix}",
        s3_endpoint_url=args.endpoint,
        s3_access_key_id=args.access_key,
        s3_secret_access_key=args.secret_key,
        s3_region="us-east-1",
    )
    store = S3Store.from_settings(settings)
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-s3-", dir=args.dir))
    size = args.size_mib * MIB
    began = time.perf_counter()
    try:
        (work / "random").mkdir()
        write_random_file(work / "random" / "weights.bin", size)
        rows = file_rows(
            store, work, work / "random" / "weights.bin", f"random {args.size_mib} MiB", args.repeat
        )
        shutil.rmtree(work / "random")
        (work / "st").mkdir()
        write_safetensors(work / "st" / "model.safetensors", size)
        actual = (work / "st" / "model.safetensors").stat().st_size
        rows += file_rows(
            store,
            work,
            work / "st" / "model.safetensors",
            f"safetensors {actual / MIB:.0f} MiB",
            args.repeat,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        wipe(store, prefix + "/")
    environment = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "boto3": boto3.__version__,
        "endpoint": args.endpoint,
        "size_mib": args.size_mib,
        "repeat": args.repeat,
        "part_size": store.multipart.part_size,
        "threads": store.multipart.threads,
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    print(
        f"python {environment['python']}, {environment['cpu_count']} CPUs, {args.endpoint}, ",
        end="",
    )
    print(f"median of {args.repeat}; ratio = ours / boto3\n")
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"environment": environment, "rows": [each.as_json() for each in rows]}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{environment['total_seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
