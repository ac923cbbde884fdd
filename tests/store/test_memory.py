"""Memory stays flat however large the model: a 2 GiB file goes through in well under 150 MiB."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

GIB = 1 << 30
BLOCK = 16 << 20

ROUND_TRIP = """
import json, sys
from modelyard.store import LocalStore, restore_directory, store_directory

def high_water_kib():
    # VmHWM starts afresh at exec, unlike ru_maxrss, which keeps the parent's figure.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

store = LocalStore(sys.argv[2])
before = high_water_kib()
manifest = store_directory(store, sys.argv[1])
restore_directory(store, manifest.digest, sys.argv[3])
print(json.dumps({"before_kib": before, "peak_kib": high_water_kib(), "size": manifest.size}))
"""


def write_random(path: Path, size: int, *, prefix: bytes = b"") -> None:
    rng = np.random.default_rng(7)
    with path.open("wb") as handle:
        handle.write(prefix)
        remaining = size - len(prefix)
        while remaining:
            block = rng.bytes(min(BLOCK, remaining))
            handle.write(block)
            remaining -= len(block)


def same_bytes(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def test_two_gib_round_trip_peaks_under_150_mib(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    write_random(source / "weights.bin", 2 * GIB)  # cut by content
    tensor = 512 << 20  # one tensor too large to hold in memory: streamed
    header = json.dumps({"big": {"dtype": "U8", "shape": [tensor], "data_offsets": [0, tensor]}})
    prefix = struct.pack("<Q", len(header)) + header.encode()
    write_random(source / "model.safetensors", len(prefix) + tensor, prefix=prefix)

    result = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP, source, tmp_path / "blobs", tmp_path / "copy"],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert figures["size"] == 2 * GIB + len(prefix) + tensor
    assert figures["peak_kib"] < 150 * 1024, figures
    for name in ("weights.bin", "model.safetensors"):
        assert same_bytes(source / name, tmp_path / "copy" / name)
