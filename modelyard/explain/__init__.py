"""Explanation: why a model said what it said, per prediction (local) and overall (global).

>>> explanation = yard.explain("fraud@production", X[:1])      # tree SHAP for a GBM
>>> explanation.top(0, 3)                                        # [(feature, contribution), …]
>>> explanation.base_value + explanation.values.sum(axis=1)     # == explanation.prediction
>>> explanation.plot("row0.png", row=0)                          # a waterfall
>>> global_importance(yard, "fraud@production").ranked(5)      # stored at registration

Explainers (SHAP tree, linear, kernel, deep and gradient; LIME tabular) share one small
interface, `Explainer`, and are registered by name with `@explainer`; which one a version gets
follows its flavor and model type unless one is named. Their background rows are real rows of
the version's reference data, stored at registration. shap, lime and matplotlib are imported
only when an explainer or a plot is built (the `explain` extra).
"""

from __future__ import annotations

from modelyard.explain import _lime, _shap, _torch
from modelyard.explain._explainer import Explainer, build_explainer, explainer, explainers
from modelyard.explain._explanation import IMPORTANCE_FILE, Explanation, GlobalImportance
from modelyard.explain._features import BACKGROUND_FILE, Features, read_background
from modelyard.explain._lime import LimeExplainer
from modelyard.explain._plots import plot_importance, plot_waterfall
from modelyard.explain._shap import KernelExplainer, LinearExplainer, TreeExplainer
from modelyard.explain._target import Target
from modelyard.explain._torch import DeepExplainer, GradientExplainer
from modelyard.explain._versions import (
    ExplainerCache,
    VersionSource,
    explain_reference,
    explain_version,
    explainer_for,
    global_importance,
    stored_importance,
)

__all__ = [
    "BACKGROUND_FILE",
    "DeepExplainer",
    "Explainer",
    "ExplainerCache",
    "Explanation",
    "Features",
    "GlobalImportance",
    "GradientExplainer",
    "IMPORTANCE_FILE",
    "KernelExplainer",
    "LimeExplainer",
    "LinearExplainer",
    "Target",
    "TreeExplainer",
    "VersionSource",
    "build_explainer",
    "explain_reference",
    "explain_version",
    "explainer",
    "explainer_for",
    "explainers",
    "global_importance",
    "plot_importance",
    "plot_waterfall",
    "read_background",
    "stored_importance",
]

_ = (_lime, _shap, _torch)  # registered on import
