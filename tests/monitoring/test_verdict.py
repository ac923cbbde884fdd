"""The dataset verdict agrees with its columns: never "no drift" when some column drifted."""

from __future__ import annotations

from modelyard.monitoring import ColumnDrift, DriftReport


def report(drifted: int, of: int, share_threshold: float = 0.5) -> DriftReport:
    columns = tuple(
        ColumnDrift(column=f"c{i}", kind="numeric", test="ks", score=0.5, p_value=0.01,
                    threshold=0.05, drifted=i < drifted)
        for i in range(of)
    )  # fmt: skip
    share = drifted / of
    return DriftReport(columns=columns, share=share, share_threshold=share_threshold,
                       drifted=share >= share_threshold)  # fmt: skip


def test_verdicts() -> None:
    assert report(0, 4).verdict() == "no drift: 0 of 4 columns drifted (0%)"
    some = report(10, 30).verdict()
    assert some == (
        "10 of 30 columns drifted (33%), under the 50% that marks the dataset as drifted"
    )
    assert "no drift" not in some
    assert report(3, 4).verdict() == (
        "DRIFTED: 3 of 4 columns drifted (75%), at least the 50% that marks the dataset"
    )
