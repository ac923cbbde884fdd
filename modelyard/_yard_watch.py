"""What `Yard` does with a version once it is served: watch it (drift, feedback) and explain it.

A mixin, so that `_yard.py` stays about the registry and the store; its methods need only what the
`_Host` protocol names.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from modelyard._remote import HttpRegistry
    from modelyard.explain import ExplainerCache, Explanation, GlobalImportance
    from modelyard.flavors import LoadedModel
    from modelyard.monitoring import MonitorReport, PredictionStore, PredictionWriter
    from modelyard.registry import ModelVersion, Registry
    from modelyard.security import TrustPolicy
    from modelyard.settings import Settings
    from modelyard.store import BlobStore


class _Host(Protocol):
    settings: Settings
    url: str | None
    _explainers: ExplainerCache | None
    _log_store: PredictionStore | None

    @property
    def store(self) -> BlobStore: ...

    def get_version(self, ref: str) -> ModelVersion: ...

    def model_folder(self, version: ModelVersion) -> Path: ...

    def load_model(self, ref: str, *, trust: bool | TrustPolicy = False) -> LoadedModel: ...

    @property
    def registry(self) -> Registry | HttpRegistry: ...

    def local_registry(self) -> Registry: ...

    def prediction_log(self) -> PredictionWriter: ...

    def prediction_store(self) -> PredictionStore: ...


class Watching:
    """`Yard.monitor`, `log_feedback`, `explain` and `importance`."""

    _explainers: ExplainerCache | None = None  # built per version: the slow part
    _log_store: PredictionStore | None = None

    def prediction_store(self: _Host) -> PredictionStore:
        """Where the served predictions and feedback of this (local) registry are kept: its
        database when that is PostgreSQL (shared by every replica and server on it), else
        JSON-lines files under the home. `ConfigurationError` for a remote client (its server
        keeps the log: see `prediction_log`)."""
        database = self.local_registry().database
        # Made again after close() and a reopen: a database store holds the closed engine.
        kept = self._log_store
        if kept is None or getattr(kept, "database", database) is not database:
            from modelyard.monitoring import DatabaseLogStore, FileLogStore

            home = self.settings.home
            kept = (
                DatabaseLogStore(database) if database.dialect == "postgresql"
                else FileLogStore(home / "predictions", home / "feedback")
            )  # fmt: skip
            self._log_store = kept
        return kept

    def prediction_log(self: _Host) -> PredictionWriter:
        """Where a server serving from this client writes its prediction log and feedback:
        the remote server's log for `Yard(url=…)`, else `prediction_store()`."""
        if self.url:
            from modelyard._remote import HttpRegistry
            from modelyard._remote_monitoring import HttpPredictionLog

            registry = self.registry
            if isinstance(registry, HttpRegistry):
                return HttpPredictionLog(registry)
        return self.prediction_store()

    def monitor(
        self: _Host,
        ref: str,
        *,
        window: timedelta = timedelta(hours=1),
        until: datetime | None = None,
        page: str | Path | None = None,
        segment: str | None = None,
        domain_classifier: bool = False,
    ) -> MonitorReport:
        """Drift of a version's served inputs and predictions over the last `window`, against
        the reference logged with it (the server must log predictions: `--log-sample`). The
        window holds what every replica logged when they share the log: a PostgreSQL registry,
        or a `Yard(url=…)` whose server computes the report.

        `page` writes the report as a self-contained HTML page with a plot per column.
        `segment` names an input column (`"country"`, `"x[2]"`): the report then has drift and
        performance per value of it too (`report.segments`). `domain_classifier` adds a
        classifier trained to tell the window's rows from the reference's to
        `report.multivariate` (slower; needs scikit-learn).

        >>> report = yard.monitor("fraud@production", window=timedelta(minutes=15))
        >>> report.drifted, [c.column for c in report.inputs.columns if c.drifted]
        """
        from modelyard._remote_monitoring import HttpPredictionLog
        from modelyard.monitoring import monitor_window, render_html

        log = self.prediction_log()
        if isinstance(log, HttpPredictionLog):
            report = log.report(ref, window=window, until=until, segment=segment,
                                domain_classifier=domain_classifier)  # fmt: skip
            if page is not None:
                Path(page).write_text(log.page(ref, window=window, until=until, segment=segment,
                                               domain_classifier=domain_classifier))  # fmt: skip
            return report
        version = self.get_version(ref)
        report, reference, current = monitor_window(
            model=version.name, version=version.number, folder=self.model_folder(version),
            window=window, until=until, store=self.prediction_store(), segment=segment,
            domain_classifier=domain_classifier,
        )  # fmt: skip
        if page is not None:
            Path(page).write_text(render_html(report, reference, current))
        return report

    def log_feedback(self: _Host, model: str, request_id: str, label: Any) -> None:
        """Record the true label of an answered request (a list, for a request of several
        rows), as `POST /v2/models/{model}/feedback` does on the server."""
        self.prediction_log().write_feedback(model, [{"id": request_id, "label": label}])

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
