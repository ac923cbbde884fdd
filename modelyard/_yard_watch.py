"""What `Yard` does with a version once it is served: watch it (drift, feedback) and explain it.

A mixin, so that `_yard.py` stays about the registry and the store; its methods need only what the
`_Host` protocol names.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from modelyard.explain import ExplainerCache, Explanation, GlobalImportance
    from modelyard.flavors import LoadedModel
    from modelyard.monitoring import MonitorReport
    from modelyard.registry import ModelVersion
    from modelyard.security import TrustPolicy
    from modelyard.settings import Settings
    from modelyard.store import BlobStore


class _Host(Protocol):
    settings: Settings
    _explainers: ExplainerCache | None

    @property
    def store(self) -> BlobStore: ...

    def get_version(self, ref: str) -> ModelVersion: ...

    def model_folder(self, version: ModelVersion) -> Path: ...

    def load_model(self, ref: str, *, trust: bool | TrustPolicy = False) -> LoadedModel: ...


class Watching:
    """`Yard.monitor`, `log_feedback`, `explain` and `importance`."""

    _explainers: ExplainerCache | None = None  # built per version: the slow part

    def monitor(
        self: _Host,
        ref: str,
        *,
        window: timedelta = timedelta(hours=1),
        until: datetime | None = None,
        page: str | Path | None = None,
    ) -> MonitorReport:
        """Drift of a version's served inputs and predictions over the last `window`, against
        the reference logged with it (the server must log predictions: `--log-sample`).

        `page` writes the report as a self-contained HTML page with a plot per column.

        >>> report = yard.monitor("fraud@production", window=timedelta(minutes=15))
        >>> report.drifted, [c.column for c in report.inputs.columns if c.drifted]
        """
        from modelyard.monitoring import monitor_window, render_html

        version = self.get_version(ref)
        report, reference, current = monitor_window(
            model=version.name, version=version.number, folder=self.model_folder(version),
            predictions=self.settings.home / "predictions", window=window, until=until,
            feedback=self.settings.home / "feedback",
        )  # fmt: skip
        if page is not None:
            Path(page).write_text(render_html(report, reference, current))
        return report

    def log_feedback(self: _Host, model: str, request_id: str, label: Any) -> None:
        """Record the true label of an answered request (a list, for a request of several
        rows), as `POST /v2/models/{model}/feedback` does on the server."""
        from modelyard.monitoring import write_feedback

        write_feedback(self.settings.home / "feedback", model, [{"id": request_id, "label": label}])

    def explain(
        self: _Host,
        ref: str,
        data: Any,
        *,
        explainer: str | None = None,
        background: Any = None,
        trust: bool = False,
    ) -> Explanation:
        """Why version `ref` predicts what it does for each row of `data` (given as the model
        takes it): each feature's contribution, the base value they start from and the
        prediction they add up to. The explainer follows the model (tree SHAP for trees, linear
        SHAP, deep SHAP for torch, kernel SHAP for the rest) unless `explainer` names one
        (`"lime"`, …); its background rows are those stored with `reference_data=`, or
        `background`. It is built once per version and kept for the next call.

        >>> explanation = yard.explain("fraud@production", X[:1])
        >>> explanation.top(0, 3)
        [('amount', 1.92), ('hour', -0.41), ('country_risk', 0.33)]
        >>> explanation.plot("why.png", row=0)
        """
        from modelyard.explain import ExplainerCache, explain_version

        if self._explainers is None:
            self._explainers = ExplainerCache()
        return explain_version(self, ref, data, explainer=explainer, background=background,
                               trust=trust, cache=self._explainers)  # fmt: skip

    def importance(
        self: _Host,
        ref: str,
        data: Any = None,
        *,
        explainer: str | None = None,
        trust: bool = False,
    ) -> GlobalImportance:
        """How much each feature matters to version `ref` overall (mean |SHAP|): the importance
        computed at registration from `reference_data=`, or, given `data` (or `explainer`),
        computed now over at most 500 of its rows (returned, not stored).

        >>> yard.importance("fraud@production").ranked(3)
        [('amount', 1.31), ('hour', 0.52), ('country_risk', 0.2)]
        """
        from modelyard.explain import ExplainerCache, global_importance

        if self._explainers is None:
            self._explainers = ExplainerCache()
        return global_importance(self, ref, data, explainer=explainer, trust=trust,
                                 cache=self._explainers)  # fmt: skip
