"""Prometheus alerting rules and a Grafana dashboard for what a modelyard server exports.

The rules cover serving (errors, latency, a full queue, dropped prediction records) and one rule
per alert of a rules file, written over the gauges the server keeps (`modelyard_drift_share`,
`modelyard_drift_score`, `modelyard_accuracy`). The dashboard's panels use only metric names
the server exports (a test checks them against a live /metrics).
"""

from __future__ import annotations

from typing import Any

from modelyard.monitoring._alerts import AlertRule
from modelyard.monitoring._quality import SIGNALS as QUALITY_SIGNALS

_OPERATORS = {">": ">", ">=": ">=", "<": "<", "<=": "<="}


def prometheus_rules(rules: list[AlertRule]) -> dict[str, Any]:
    """Alerting rules in Prometheus's rule-file form (YAML once dumped)."""
    serving = [
        _rule("ModelyardErrorRate",
              'sum by (model) (rate(modelyard_requests_total{code=~"5.."}[5m]))'
              " / sum by (model) (rate(modelyard_requests_total[5m])) > 0.05",
              "5m", "{{ $labels.model }}: more than 5% of requests fail"),
        _rule("ModelyardLatencyP99",
              "histogram_quantile(0.99, sum by (model, le)"
              " (rate(modelyard_request_seconds_bucket[5m]))) > 0.5",
              "10m", "{{ $labels.model }}: p99 latency over 500 ms"),
        _rule("ModelyardQueueFull", "max by (model) (modelyard_queue_depth) > 400", "2m",
              "{{ $labels.model }}: requests are queuing (429s follow)"),
        _rule("ModelyardPredictionLogDropping",
              "rate(modelyard_prediction_log_dropped_total[10m]) > 0", "10m",
              "prediction records are being dropped: monitoring sees less than the traffic"),
        _rule("ModelyardAlertFiring", "modelyard_alert_state == 2", "0m",
              "modelyard alert {{ $labels.rule }} is firing"),
    ]  # fmt: skip
    custom = [_from_alert(rule) for rule in rules]
    return {"groups": [{"name": "modelyard-serving", "rules": serving},
                       {"name": "modelyard-monitoring", "rules": custom}]}  # fmt: skip


def _from_alert(rule: AlertRule) -> dict[str, Any]:
    name, _, _alias = rule.model.partition("@")
    selector = f'model="{name}"'
    if rule.signal == "drift_share":
        metric = f'modelyard_drift_share{{{selector},kind="inputs"}}'
    elif rule.signal == "prediction_drift":
        metric = f'modelyard_drift_share{{{selector},kind="predictions"}}'
    elif rule.signal == "accuracy":
        metric = f"modelyard_accuracy{{{selector}}}"
    elif rule.signal == "estimated_accuracy":
        metric = f"modelyard_estimated_accuracy{{{selector}}}"
    elif rule.signal == "error_rate":
        window = _range(rule)
        metric = (f'sum(rate(modelyard_requests_total{{{selector},code=~"5.."}}[{window}])) / '
                  f"sum(rate(modelyard_requests_total{{{selector}}}[{window}]))")  # fmt: skip
    elif rule.signal == "latency_p99":
        metric = ("histogram_quantile(0.99, sum by (le) (rate("
                  f"modelyard_request_seconds_bucket{{{selector}}}[{_range(rule)}])))")  # fmt: skip
    elif rule.signal == "multivariate_drift":
        metric = f"modelyard_multivariate_drift{{{selector}}}"
    elif rule.signal.partition(":")[0] in ("embedding_drift", "text_drift"):
        test, _, column = rule.signal.partition(":")
        metric = f'modelyard_sample_drift{{{selector},test="{test}",name="{_quoted(column)}"}}'
    elif rule.signal.partition(":")[0] in QUALITY_SIGNALS.values():
        check, _, column = rule.signal.partition(":")
        metric = f'modelyard_data_quality{{{selector},column="{_quoted(column)}",check="{check}"}}'
    else:
        column = rule.signal.removeprefix("column:").replace('"', '\\"')
        metric = f'modelyard_drift_score{{{selector},column="{column}"}}'
    expression = f"{metric} {_OPERATORS[rule.op]} {rule.threshold}"
    minutes = int(rule.for_.total_seconds() // 60)
    return _rule(_camel(rule.name), expression, f"{minutes}m",
                 f"{rule.model}: {rule.signal} {rule.op} {rule.threshold}")  # fmt: skip


def _range(rule: AlertRule) -> str:
    """The rule's window as a PromQL range (whole seconds, at least one)."""
    return f"{max(1, int(rule.window.total_seconds()))}s"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _rule(alert: str, expression: str, duration: str, summary: str) -> dict[str, Any]:
    return {"alert": alert, "expr": expression, "for": duration,
            "labels": {"severity": "warning"}, "annotations": {"summary": summary}}  # fmt: skip


def _camel(name: str) -> str:
    parts = [part for part in name.replace("_", "-").split("-") if part]
    return "Modelyard" + "".join(part[:1].upper() + part[1:] for part in parts)


def grafana_dashboard() -> dict[str, Any]:
    """A Grafana dashboard (JSON model) over the server's metrics; its datasource is chosen at
    import (`${DS_PROMETHEUS}`)."""
    panels = [
        ("Requests per second by code", "sum by (model, version, code) "
         "(rate(modelyard_requests_total[1m]))", "reqps"),
        ("p99 latency", "histogram_quantile(0.99, sum by (model, version, le) "
         "(rate(modelyard_request_seconds_bucket[5m])))", "s"),
        ("Mean batch rows", "sum by (model) (rate(modelyard_batch_rows_sum[5m])) / "
         "sum by (model) (rate(modelyard_batch_rows_count[5m]))", "short"),
        ("Queue depth", "modelyard_queue_depth", "short"),
        ("Loaded versions", "modelyard_loaded_versions", "short"),
        ("Drift share", "modelyard_drift_share", "percentunit"),
        ("Drift score by column", "modelyard_drift_score", "short"),
        ("Accuracy from feedback", "modelyard_accuracy", "percentunit"),
        ("Alert states (2 firing)", "modelyard_alert_state", "short"),
        ("Alert evaluator (1 per rules file)", "modelyard_alert_evaluator", "short"),
        ("Shadow agreement", "sum by (model, shadow, outcome) "
         "(rate(modelyard_shadow_requests_total[5m]))", "reqps"),
        ("Feedback labels per second", "rate(modelyard_feedback_total[5m])", "short"),
        ("Prediction records dropped", "rate(modelyard_prediction_log_dropped_total[5m])",
         "short"),
    ]  # fmt: skip
    return {
        "title": "modelyard",
        "uid": "modelyard",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "DS_PROMETHEUS", "type": "datasource", "query": "prometheus"}]
        },  # fmt: skip
        "panels": [
            {
                "id": index + 1,
                "title": title,
                "type": "timeseries",
                "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [{"expr": expression, "refId": "A"}],
            }
            for index, (title, expression, unit) in enumerate(panels)
        ],
    }
