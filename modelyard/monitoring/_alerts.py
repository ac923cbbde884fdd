"""Alert rules over monitored signals, evaluated on a schedule, with a for-duration.

A rules file (YAML or JSON) lists rules such as

    - name: fraud-input-drift
      model: fraud@production          # the served alias the rule watches
      signal: drift_share              # drift_share, prediction_drift, accuracy, column:<name>
      op: ">="
      threshold: 0.3
      window: 15m                      # traffic the signal is computed over
      for: 0s                          # how long it must hold before the rule fires
      min_rows: 100                    # fewer rows in the window give no verdict
      actions: [{type: webhook, url: "http://hooks.local/alerts"}, {type: rollback}, {type: log}]

A rule is inactive, pending (the condition holds, not yet for long enough) or firing; actions
run once when it starts firing, and again only after it resolved.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from modelyard.errors import ConfigurationError, InvalidReference, did_you_mean
from modelyard.monitoring._quality import SIGNALS as QUALITY_SIGNALS
from modelyard.monitoring._quality import quality_value
from modelyard.monitoring._reports import MonitorReport
from modelyard.monitoring._webhooks import webhook_url

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
SIGNALS = (
    "drift_share", "prediction_drift", "accuracy", "estimated_accuracy", "error_rate",
    "latency_p99", "missing_share", "multivariate_drift",
)  # fmt: skip
COLUMN_SIGNALS = ("column", *QUALITY_SIGNALS.values(), "embedding_drift", "text_drift")
"""Signals of one input column, spelt `<signal>:<column>`: `column` is its drift score; the
others are its data quality checks (`modelyard.monitoring.data_quality`), and
`embedding_drift:<name>` and `text_drift:<column>` (an input or output) are 1 - the p-value of
its embedding or text drift test (0.95 and up: drifted at alpha 0.05)."""
TRAFFIC_SIGNALS = ("error_rate", "latency_p99")
"""Signals the serving process measures itself (from its recent requests, not the log)."""


def duration(text: str | float) -> timedelta:
    """`30s`, `15m`, `1h`, `2d` (or seconds as a number) as a timedelta."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a duration such as 30s, 15m, 1h or 2d, got {text!r}")
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


class Action(BaseModel):
    """What a firing rule does: POST a JSON body to a webhook, log, or roll the alias back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["webhook", "log", "rollback"]
    url: str | None = None

    @model_validator(mode="after")
    def _url(self) -> Action:
        if self.type == "webhook" and not self.url:
            raise ValueError("a webhook action needs a url")
        return self


class AlertRule(BaseModel):
    """A condition on a signal of a served model, held for `for_` before it fires."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str
    model: str
    signal: str
    op: Literal[">", ">=", "<", "<="] = ">="
    threshold: float
    window: timedelta = timedelta(minutes=15)
    for_: timedelta = Field(default=timedelta(0), alias="for")
    min_rows: int = Field(default=100, ge=1)  # fewer rows in the window: no verdict yet
    actions: list[Action] = Field(default_factory=lambda: [Action(type="log")])

    @field_validator("window", "for_", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration(value) if isinstance(value, str | int | float) else value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        # Any reference form (`models:/fraud@production` too), kept in its plain spelling,
        # which the rollback and the exported rules split into name and alias.
        from modelyard.registry import Reference

        try:
            return str(Reference.parse(value))
        except InvalidReference as error:
            raise ValueError(str(error)) from None

    @field_validator("signal")
    @classmethod
    def _signal(cls, value: str) -> str:
        prefix, colon, column = value.partition(":")
        if value not in SIGNALS and not (colon and column and prefix in COLUMN_SIGNALS):
            known = [*SIGNALS, *(f"{name}:<column>" for name in COLUMN_SIGNALS)]
            hint = did_you_mean(
                prefix if colon else value, list(dict.fromkeys([*SIGNALS, *COLUMN_SIGNALS]))
            )
            raise ValueError(f"unknown signal {value!r}{hint}; signals: {', '.join(known)}")
        return value

    def holds(self, value: float) -> bool:
        """Whether `value` meets the rule's condition."""
        return _OPS[self.op](value, self.threshold)


def load_rules(
    path: Path, *, allowed_webhooks: list[str] | None, served: Collection[str] | None = None
) -> list[AlertRule]:
    """Read a rules file; each webhook must be admitted by an entry of `allowed_webhooks`
    (compared by scheme, host, port and path: see `modelyard.monitoring._webhooks`), so a
    rules file cannot make the server post data anywhere else. Webhook URLs come back
    normalised. `None` skips the check, for callers that never post (`monitor export`).
    With `served` (the model names a server serves), a rule watching any other model is
    refused here, at start, rather than failing at every evaluation."""
    import yaml  # only when a rules file is read: importing monitoring stays light

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigurationError(f"cannot read alert rules from {path}: {error}") from None
    if not isinstance(document, list | None):
        raise ConfigurationError(f"{path} must hold a list of rules")
    rules = []
    for index, item in enumerate(document or []):
        try:
            rules.append(AlertRule.model_validate(item))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "rule"
            problem = first["msg"].removeprefix("Value error, ")
            raise ConfigurationError(f"{path}: rule {index}: {where}: {problem}") from None
    for rule in rules if served is not None else ():
        _check_served(path, rule, served or ())
    if allowed_webhooks is None:
        return rules
    return [_checked(rule, allowed_webhooks) for rule in rules]


def _check_served(path: Path, rule: AlertRule, served: Collection[str]) -> None:
    name = rule.model.partition("@")[0].partition(":")[0]  # parsed: NAME[:N|@ALIAS[~N]]
    if name not in served:
        serving = ", ".join(sorted(served)) or "nothing"
        raise ConfigurationError(
            f"{path}: rule {rule.name!r} watches {rule.model}, which this server does not "
            f"serve (it serves {serving}){did_you_mean(name, served)}"
        )


def _checked(rule: AlertRule, allowed: list[str]) -> AlertRule:
    actions = []
    for action in rule.actions:
        if action.type == "webhook":
            try:
                action = action.model_copy(update={"url": webhook_url(action.url or "", allowed)})
            except ValueError as error:
                raise ConfigurationError(
                    f"rule {rule.name!r}: webhook {action.url!r} is not allowed: {error}; "
                    "MODELYARD_ALERT_WEBHOOKS lists the URLs (scheme, host, port and path "
                    "prefix) webhooks may post to"
                ) from None
        actions.append(action)
    return rule.model_copy(update={"actions": actions})


def signal_value(rule: AlertRule, report: MonitorReport) -> float | None:
    """The rule's signal in a monitoring report, or None when the window has too few rows."""
    if report.rows < rule.min_rows:
        return None
    if rule.signal == "drift_share":
        return None if report.inputs is None else report.inputs.share
    if rule.signal == "prediction_drift":
        return None if report.predictions is None else report.predictions.share
    if rule.signal == "accuracy":
        performance = report.performance
        return None if performance is None else performance.metrics.get("accuracy")
    if rule.signal == "estimated_accuracy":
        return report.estimated_accuracy
    if rule.signal == "multivariate_drift":  # mean error / calibrated threshold: > 1 drifted
        return None if report.multivariate is None else report.multivariate.score
    if rule.signal.partition(":")[0] in ("embedding_drift", "text_drift"):
        return _sample_drift(rule.signal, report)
    if rule.signal.partition(":")[0] in QUALITY_SIGNALS.values():
        return quality_value(rule.signal, report.quality)
    column = rule.signal.removeprefix("column:")
    for drift in report.inputs.columns if report.inputs is not None else ():
        if drift.column == column:
            return drift.score
    return None


def _sample_drift(signal: str, report: MonitorReport) -> float | None:
    """`embedding_drift:<name>` and `text_drift:<column>`: 1 - the test's p-value (an input
    before an output of the same name)."""
    kind, _, name = signal.partition(":")
    if kind == "embedding_drift":
        values = {drift.name: drift.signal for drift in reversed(report.embeddings)}
    else:
        values = {drift.column: drift.signal for drift in reversed(report.text)}
    return values.get(name)


class State(IntEnum):
    """Where a rule stands; the value is what /metrics exports."""

    INACTIVE = 0
    PENDING = 1
    FIRING = 2


class RuleState:
    """One rule's state over evaluations: when its condition started holding, and whether it
    fired."""

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self.state = State.INACTIVE
        self.since: datetime | None = None
        self.value: float | None = None

    def update(self, value: float | None, now: datetime | None = None) -> bool:
        """Take a new value of the signal; True when the rule starts firing now."""
        now = now or datetime.now(UTC)
        self.value = value
        if value is None or not self.rule.holds(value):
            self.state, self.since = State.INACTIVE, None
            return False
        if self.since is None:
            self.since = now
        if self.state is State.FIRING:
            return False
        if now - self.since >= self.rule.for_:
            self.state = State.FIRING
            return True
        self.state = State.PENDING
        return False
