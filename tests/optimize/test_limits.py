"""What a step's verdict covers: the metric, and latency and size too, each named when it
refuses; ratios read as people say them ("3.45x slower", never "0.29x faster")."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.errors import ConfigurationError
from modelyard.optimize import Measurement, OptimizeReport
from modelyard.optimize._report import times


def report(*, batch1: float = 1.0, batch64: float = 4.0, size: int = 1000,
           metric: float = 0.9, **limits: Any) -> OptimizeReport:  # fmt: skip
    parent = Measurement(size_bytes=1000, p50_batch1_ms=1.0, p50_batch64_ms=4.0, metric=0.9)
    child = Measurement(size_bytes=size, p50_batch1_ms=batch1, p50_batch64_ms=batch64,
                        metric=metric)  # fmt: skip
    return OptimizeReport(step="quantize", settings={"dtype": "int8"}, parent="mlp:1",
                          metric="accuracy", higher_is_better=True, tolerance=0.01, rows=100,
                          before=parent, after=child, **limits)  # fmt: skip


def test_times() -> None:
    assert times(3.4, "faster", "slower") == "3.40x faster"
    assert times(0.29, "faster", "slower") == "3.45x slower"
    assert times(1.0, "smaller", "larger") == "1.00x smaller"


def test_a_slower_result_is_refused_past_max_slowdown() -> None:
    slow = report(batch1=3.4, batch64=13.6, max_slowdown=1.5)
    assert slow.slowdown == pytest.approx(3.4) and not slow.accepted
    (problem,) = slow.problems()
    assert problem == "it answers 3.40x slower than mlp:1 at batch 1 and 64, past max_slowdown 1.5"
    table = slow.table()
    assert "| p50 batch 1 | 1.000 ms | 3.400 ms | 3.40x slower |" in table
    assert "max slowdown 1.5x: refused: it answers 3.40x slower" in table
    assert "faster" not in table
    # Slower at one batch size but faster at the other is a trade-off, not a regression.
    assert report(batch1=3.4, batch64=2.0, max_slowdown=1.5).accepted
    assert report(batch1=1.4, batch64=5.6, max_slowdown=1.5).accepted  # within the margin
    assert report(batch1=3.4, batch64=13.6).accepted  # None: latency is not judged


def test_a_larger_result_is_refused_past_max_size_ratio() -> None:
    large = report(size=2500, max_size_ratio=2)
    assert large.problems() == ["it is 2.50x the size of mlp:1, past max_size_ratio 2"]
    assert "| size on disk | 1000 B | 2.4 KiB | 2.50x larger |" in large.table()
    assert report(size=1500, max_size_ratio=2).accepted


def test_every_reason_is_named_and_the_way_to_force_it() -> None:
    bad = report(batch1=5, batch64=20, size=3000, metric=0.5, max_slowdown=1.5, max_size_ratio=2)
    assert len(bad.problems()) == 3
    refusal = bad.refusal(force="--force")
    first = refusal.splitlines()[0]
    assert first.startswith("quantize of mlp:1 refused: accuracy changed by -44.44%")
    assert "slower" in first and "the size of" in first
    assert "(pass --force to register it anyway, tagged optimize.forced)" in first
    assert "force=True" in bad.refusal()
    forced = bad.model_copy(update={"forced": True})
    assert "2x: forced: accuracy changed by" in forced.table()


@pytest.mark.parametrize("options", [{"max_slowdown": 0.5}, {"max_size_ratio": "big"}])
def test_limits_are_checked_before_any_work(options: dict[str, Any]) -> None:
    from modelyard.optimize._checks import check_of

    with pytest.raises(ConfigurationError, match="must be a ratio of at least 1"):
        check_of(([[1.0]], [1]), "accuracy", options)
    check = check_of(([[1.0]], [1]), "accuracy", {"max_slowdown": None, "max_size_ratio": 3})
    assert check.max_slowdown is None and check.max_size_ratio == 3.0
    assert check_of(([[1.0]], [1]), "accuracy", {}).max_slowdown == 1.5
