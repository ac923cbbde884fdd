"""Monitoring: profile tables into mergeable summaries and detect drift between two profiles.

from modelyard.monitoring import detect_drift, profile

reference = profile(training_frame)
window = profile(todays_inputs, reference=reference)
report = detect_drift(reference, window)
print(report.drifted, [c.column for c in report.columns if c.drifted])
"""

from __future__ import annotations

from modelyard.monitoring._alert_history import (
    AlertEvents,
    AlertHistory,
    alert_folder,
    read_alert_history,
    read_alert_rules,
)
from modelyard.monitoring._alert_loop import (
    AlertGauges,
    AlertJournal,
    AlertLoop,
    AlertSource,
    TrafficWindow,
    TrafficWindows,
)
from modelyard.monitoring._alerts import AlertRule, duration, load_rules
from modelyard.monitoring._columns import CategoricalColumn, Histogram, NumericColumn
from modelyard.monitoring._domain_classifier import DomainClassifierDrift
from modelyard.monitoring._drift import ColumnDrift, DriftReport, detect_drift
from modelyard.monitoring._embeddings import EmbeddingDrift, mmd_test
from modelyard.monitoring._evaluator_lease import (
    EvaluatorLease,
    Leases,
    holder_id,
    rules_lease_name,
)
from modelyard.monitoring._export import grafana_dashboard, prometheus_rules
from modelyard.monitoring._feedback import parse_feedback, read_feedback, write_feedback
from modelyard.monitoring._html import render_html
from modelyard.monitoring._log_batches import parse_prediction_batch
from modelyard.monitoring._log_lines import UnreadableLines
from modelyard.monitoring._log_scan import Activity, activity, served_versions
from modelyard.monitoring._log_store import (
    DatabaseLogStore,
    FileLogStore,
    PredictionStore,
    PredictionWriter,
    encode_record,
    replica_id,
    write_log_lines,
)
from modelyard.monitoring._multivariate import (
    MultivariateDrift,
    MultivariateReference,
    fit_multivariate,
    multivariate_drift,
    read_multivariate,
)
from modelyard.monitoring._performance import (
    Performance,
    auc,
    classification_metrics,
    performance,
)
from modelyard.monitoring._profile import Profile, profile
from modelyard.monitoring._quality import (
    ColumnQuality,
    QualityReport,
    QualityThresholds,
    data_quality,
)
from modelyard.monitoring._reports import MonitorReport, monitor_window
from modelyard.monitoring._reservoir import Reservoir
from modelyard.monitoring._segments import SegmentReport
from modelyard.monitoring._sketch import QuantileSketch
from modelyard.monitoring._statistics import DriftTest
from modelyard.monitoring._text import DescriptorDrift, TextDrift
from modelyard.monitoring._timeline import (
    DriftCache,
    SampleDrift,
    Timeline,
    WindowDrift,
    drift_timeline,
    window_edges,
)
from modelyard.monitoring._windows import (
    flat_columns,
    read_records,
    read_reference,
    read_window,
    write_reference,
)

__all__ = [
    "Activity",
    "AlertEvents",
    "AlertGauges",
    "AlertHistory",
    "AlertJournal",
    "AlertLoop",
    "AlertRule",
    "AlertSource",
    "CategoricalColumn",
    "ColumnDrift",
    "ColumnQuality",
    "DatabaseLogStore",
    "DescriptorDrift",
    "DomainClassifierDrift",
    "DriftCache",
    "DriftReport",
    "DriftTest",
    "EmbeddingDrift",
    "EvaluatorLease",
    "FileLogStore",
    "Histogram",
    "Leases",
    "MonitorReport",
    "MultivariateDrift",
    "MultivariateReference",
    "NumericColumn",
    "Performance",
    "PredictionStore",
    "PredictionWriter",
    "Profile",
    "QualityReport",
    "QualityThresholds",
    "QuantileSketch",
    "Reservoir",
    "SampleDrift",
    "SegmentReport",
    "TextDrift",
    "Timeline",
    "TrafficWindow",
    "TrafficWindows",
    "UnreadableLines",
    "WindowDrift",
    "activity",
    "alert_folder",
    "auc",
    "classification_metrics",
    "data_quality",
    "detect_drift",
    "drift_timeline",
    "duration",
    "encode_record",
    "fit_multivariate",
    "flat_columns",
    "grafana_dashboard",
    "holder_id",
    "load_rules",
    "mmd_test",
    "monitor_window",
    "multivariate_drift",
    "parse_feedback",
    "parse_prediction_batch",
    "performance",
    "profile",
    "prometheus_rules",
    "read_alert_history",
    "read_alert_rules",
    "read_feedback",
    "read_multivariate",
    "read_records",
    "read_reference",
    "read_window",
    "render_html",
    "replica_id",
    "rules_lease_name",
    "served_versions",
    "window_edges",
    "write_feedback",
    "write_log_lines",
    "write_reference",
]
