"""Timing helpers shared by the store benchmarks: one timed run with its peak RSS growth, and
random test files. Imported by `bench/store.py` and `bench/store_s3.py` as a sibling module."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIB = 1 << 20


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


def write_random_file(path: Path, size: int, seed: int = 0) -> None:
    """Write `size` random (incompressible) bytes to `path`, 16 MiB at a time."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as handle:
        for offset in range(0, size, 16 * MIB):
            handle.write(rng.bytes(min(16 * MIB, size - offset)))
