"""Optimization: quantize, prune, convert, distill and tune; each result is a new version with
lineage.

>>> result = yard.optimize.quantize("mlp@production", eval_data=(X, y))
>>> print(result.report.table())
"""

from __future__ import annotations

from modelyard.optimize._measure import METRICS, Measurement
from modelyard.optimize._optimizer import Optimized, Optimizer
from modelyard.optimize._report import OptimizeReport
from modelyard.optimize._sources import ModelLogger, OptimizeSource, TuneSource
from modelyard.optimize._tune import TrialResult, TrialSummary, TuneResult, TuneTrial, tune

__all__ = [
    "METRICS",
    "Measurement",
    "ModelLogger",
    "OptimizeReport",
    "OptimizeSource",
    "Optimized",
    "Optimizer",
    "TrialResult",
    "TrialSummary",
    "TuneResult",
    "TuneSource",
    "TuneTrial",
    "tune",
]
