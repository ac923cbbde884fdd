"""Alert rules evaluated on a schedule inside a serving process: each rule's window is reported
on (drift, performance), its signal checked, its state exported, and its actions run when it
starts firing. A rollback moves the alias, which the serving pool then follows like any other
move.

With `leases` (the registry), the processes running the same rules (replicas, workers) evaluate
them once: at each interval each tries to take or renew one lease (`EvaluatorLease`); the holder
evaluates, the others skip and export `modelyard_alert_evaluator` 0. A loop that stops releases
the lease, so another process takes over at its next interval; one that dies loses it when it
expires.

The loop takes what it uses as narrow protocols (`AlertSource`, `AlertGauges`,
`TrafficWindows`, `AlertJournal`), so monitoring imports neither the `Yard` facade nor serving:
the inference server wires a `Yard`, its `Metrics`, its `Traffic` and an `AlertHistory` in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import ModelyardError
from modelyard.monitoring._actions import alert_body, run_actions
from modelyard.monitoring._alert_history import rule_model
from modelyard.monitoring._alerts import (
    TRAFFIC_SIGNALS,
    AlertRule,
    RuleState,
    State,
    signal_value,
)
from modelyard.monitoring._evaluator_lease import (
    LEASE_INTERVALS,
    EvaluatorLease,
    Leases,
    rules_lease_name,
)
from modelyard.monitoring._reports import MonitorReport

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge

    from modelyard.registry import ModelVersion

log = logging.getLogger("modelyard.alerts")


class AlertSource(Protocol):
    """What evaluating and acting on rules needs from the registry (a `Yard` is one)."""

    def get_version(self, ref: str) -> ModelVersion:
        """The version a rule's `model` (`fraud@production`) points at now."""
        ...

    def monitor(self, ref: str, *, window: timedelta = ...) -> MonitorReport:
        """Drift and performance of the version's logged traffic over the last `window`."""
        ...

    def rollback(self, name: str, alias: str = ..., *, reason: str = ...) -> ModelVersion:
        """Move `alias` back to the version it pointed at before."""
        ...


class AlertGauges(Protocol):
    """Where rule states and evaluated signals are exported (a serving `Metrics` is one)."""

    @property
    def alert_state(self) -> Gauge: ...  # labels: rule

    @property
    def alert_firings(self) -> Counter: ...  # labels: rule

    @property
    def alert_evaluator(self) -> Gauge: ...  # no labels: 1 on the process evaluating the rules

    @property
    def drift_share(self) -> Gauge: ...  # labels: model, version, kind

    @property
    def drift_score(self) -> Gauge: ...  # labels: model, version, column

    @property
    def accuracy(self) -> Gauge: ...  # labels: model, version

    @property
    def data_quality(self) -> Gauge: ...  # labels: model, version, column, check

    @property
    def log_unreadable(self) -> Gauge: ...  # labels: model, version: lines skipped in a window

    @property
    def multivariate_drift(self) -> Gauge: ...  # labels: model, version

    @property
    def estimated_accuracy(self) -> Gauge: ...  # labels: model, version

    @property
    def sample_drift(self) -> Gauge: ...  # labels: model, version, test, name


class TrafficWindow(Protocol):
    """A window of one model's answered requests."""

    @property
    def requests(self) -> int: ...

    @property
    def error_rate(self) -> float: ...

    @property
    def latency_p99(self) -> float: ...


class TrafficWindows(Protocol):
    """The serving process's recent requests (a serving `Traffic` is one)."""

    def summary(self, model: str, window: float) -> TrafficWindow | None:
        """Requests of the last `window` seconds, or None when there were none."""
        ...


class AlertJournal(Protocol):
    """Where rule state changes and action outcomes are kept (an `AlertHistory` is one); its
    methods do file I/O, so the loop calls them in a worker thread."""

    def record(self, model: str, event: Mapping[str, Any]) -> None:
        """Append one event to `model`'s history."""
        ...

    def write_rules(self, rules: Iterable[AlertRule]) -> None:
        """Keep the rules in force now, per model."""
        ...


class AlertLoop:
    """Evaluate `rules` every `interval` seconds against what the server logged.

    >>> loop = AlertLoop(load_rules(path, allowed_webhooks=[]), yard=yard, metrics=metrics,
    ...                  interval=30, traffic=traffic, leases=yard)
    >>> loop.start()          # on the server's event loop; `await loop.stop()` at shutdown

    `leases`: evaluate only while holding the rules' lease for `lease_seconds` (default three
    intervals); None evaluates always (one process).
    """

    def __init__(
        self,
        rules: list[AlertRule],
        *,
        yard: AlertSource,
        metrics: AlertGauges,
        interval: float,
        traffic: TrafficWindows | None = None,
        history: AlertJournal | None = None,
        leases: Leases | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.states = [RuleState(rule) for rule in rules]
        self.yard = yard
        self.metrics = metrics
        self.interval = interval
        self.traffic = traffic  # this process's recent requests, for error rate and latency
        self.history = history  # where state changes and action outcomes are kept
        self._task: asyncio.Task[None] | None = None
        self.lease = None if leases is None else EvaluatorLease(
            leases, name=rules_lease_name(rules),
            seconds=lease_seconds or LEASE_INTERVALS * interval,
        )  # fmt: skip

    def start(self) -> None:
        """Evaluate on the running loop from now on."""
        if self._task is None and self.states:
            self._task = asyncio.get_running_loop().create_task(self._forever())

    async def stop(self) -> None:
        """Stop evaluating, and release the lease (another process takes over at once)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.lease is not None:
            await self.lease.release()
            self.metrics.alert_evaluator.set(0)

    async def tick(self, now: datetime | None = None) -> list[str]:
        """One interval's work: take or renew the lease (when shared), and evaluate every rule
        if this process holds it; the names of the rules that started firing."""
        if self.lease is not None:
            before = self.lease.held
            held = await self.lease.renew()
            self.metrics.alert_evaluator.set(int(held))
            if not held:
                if before:  # another process evaluates now: start afresh if this one is again
                    self._forget()
                return []
        return await self.evaluate(now)

    def _lapsed(self) -> bool:
        """Whether the lease this process held when it began evaluating ran out since (by its
        own clock): another process may have taken it and be acting now."""
        return self.lease is not None and self.lease.held and not self.lease.valid()

    def _forget(self) -> None:
        self.states = [RuleState(state.rule) for state in self.states]
        for state in self.states:
            self.metrics.alert_state.labels(state.rule.name).set(int(state.state))

    async def evaluate(self, now: datetime | None = None) -> list[str]:
        """Evaluate every rule once; the names of the rules that started firing."""
        fired = []
        reports: dict[tuple[str, timedelta], MonitorReport] = {}  # rules sharing a window
        for state in self.states:
            rule = state.rule
            try:
                value, version = await self._signal(rule, reports)
            except ModelyardError as error:  # no reference, alias gone: one line, no traceback
                log.warning("alert %s: cannot evaluate: %s", rule.name, error)
                continue
            except Exception:  # anything else is a bug: its traceback helps; the rule waits
                log.exception("alert %s: cannot evaluate", rule.name)
                continue
            before = state.state
            started = state.update(value, now)
            if started and self._lapsed():
                state.state = before  # fires when this process holds the lease again, if due
                log.warning("alert %s: the lease ran out while evaluating; not acting (another "
                            "process may be evaluating now)", rule.name)  # fmt: skip
                continue
            if state.state is not before:
                await self._keep(rule, _event(before, state.state), state.value, version)
            if started:
                fired.append(rule.name)
                await self._fire(rule, state.value or 0.0, version)
                self.metrics.alert_firings.labels(rule.name).inc()
            self.metrics.alert_state.labels(rule.name).set(int(state.state))
        return fired

    async def _signal(
        self, rule: AlertRule, reports: dict[tuple[str, timedelta], MonitorReport]
    ) -> tuple[float | None, str]:
        if rule.signal in TRAFFIC_SIGNALS:
            version = await asyncio.to_thread(self.yard.get_version, rule.model)
            name = rule.model.partition("@")[0]
            seconds = rule.window.total_seconds()
            summary = self.traffic.summary(name, seconds) if self.traffic is not None else None
            if summary is None or summary.requests < rule.min_rows:
                return None, str(version.number)
            return float(getattr(summary, rule.signal)), str(version.number)
        key = (rule.model, rule.window)
        if key not in reports:
            reports[key] = await asyncio.to_thread(
                self.yard.monitor, rule.model, window=rule.window
            )
            self._export(reports[key])
        return signal_value(rule, reports[key]), str(reports[key].version)

    async def _fire(self, rule: AlertRule, value: float, version: str) -> None:
        def rollback(name: str, alias: str, reason: str) -> object:
            return self.yard.rollback(name, alias, reason=reason)

        def act() -> list[str]:
            outcomes = run_actions(rule, body, rollback=rollback)
            self._write(rule, {"event": "actions", "outcomes": outcomes}, value, version)
            return outcomes

        body = alert_body(rule, value, version)
        outcomes = await asyncio.to_thread(act)
        log.warning("alert %s fired (%s = %.4g): %s", rule.name, rule.signal, value,
                    "; ".join(outcomes))  # fmt: skip

    async def _keep(self, rule: AlertRule, event: str, value: float | None, version: str) -> None:
        if self.history is not None:
            await asyncio.to_thread(self._write, rule, {"event": event}, value, version)

    def _write(
        self, rule: AlertRule, event: dict[str, Any], value: float | None, version: str
    ) -> None:
        if self.history is None:
            return
        try:
            self.history.record(
                rule_model(rule),
                {"rule": rule.name, **event, "signal": rule.signal, "value": value,
                 "version": version, "op": rule.op, "threshold": rule.threshold},
            )  # fmt: skip
        except OSError:  # a full disk must not stop the alerts themselves
            log.exception("alert %s: cannot record its history", rule.name)

    async def _snapshot(self) -> None:
        if self.history is None:
            return
        try:
            await asyncio.to_thread(self.history.write_rules, [s.rule for s in self.states])
        except OSError:
            log.exception("alerts: cannot write the rules in force")

    def _export(self, report: MonitorReport) -> None:
        version = str(report.version)
        self.metrics.log_unreadable.labels(report.model, version).set(report.unreadable_lines)
        for kind, drift in (("inputs", report.inputs), ("predictions", report.predictions)):
            if drift is not None:
                self.metrics.drift_share.labels(report.model, version, kind).set(drift.share)
        for column in report.inputs.columns if report.inputs is not None else ():
            self.metrics.drift_score.labels(report.model, version, column.column).set(column.score)
        for name, check, value in report.quality.signals() if report.quality else ():
            self.metrics.data_quality.labels(report.model, version, name, check).set(value)
        if report.multivariate is not None:
            score = report.multivariate.score
            self.metrics.multivariate_drift.labels(report.model, version).set(score)
        samples = [("embedding_drift", e.name, e.signal) for e in report.embeddings]
        samples += [("text_drift", t.column, t.signal) for t in report.text]
        for test, name, value in reversed(samples):  # an input before an output of that name
            self.metrics.sample_drift.labels(report.model, version, test, name).set(value)
        if report.estimated_accuracy is not None:
            estimate = report.estimated_accuracy
            self.metrics.estimated_accuracy.labels(report.model, version).set(estimate)
        if report.performance is not None and "accuracy" in report.performance.metrics:
            accuracy = report.performance.metrics["accuracy"]
            self.metrics.accuracy.labels(report.model, version).set(accuracy)

    async def _forever(self) -> None:
        await self._snapshot()
        while True:
            await asyncio.sleep(self.interval)
            await self.tick()


def _event(before: State, after: State) -> str:
    """The history's name for a change of state: a firing rule that stops has resolved."""
    if after is State.INACTIVE:
        return "resolved" if before is State.FIRING else "inactive"
    return after.name.lower()
