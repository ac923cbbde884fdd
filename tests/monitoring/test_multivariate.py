"""Multivariate drift: the PCA reconstruction test holds its level on same-distribution windows
and has power; a pair of correlated columns whose correlation flips (same marginals) is found
by it and by the domain classifier and missed by every univariate test; a damaged or crafted
stored reference is refused with InvalidInput; the section reaches the report, the alert
signal, the HTML page, the CLI and the API."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard._remote import HttpRegistry
from modelyard._remote_monitoring import HttpPredictionLog
from modelyard.api import create_app
from modelyard.errors import ConfigurationError, InvalidInput
from modelyard.monitoring import (
    AlertLoop,
    AlertRule,
    FileLogStore,
    MonitorReport,
    MultivariateDrift,
    MultivariateReference,
    detect_drift,
    fit_multivariate,
    monitor_window,
    multivariate_drift,
    profile,
    read_multivariate,
    render_html,
    write_reference,
)
from modelyard.monitoring._alerts import signal_value
from modelyard.monitoring._domain_classifier import classify_domains
from modelyard.monitoring._export import prometheus_rules
from modelyard.monitoring._multivariate import MAX_BYTES, REFERENCE_MULTIVARIATE
from modelyard.serving import Metrics
from tests.asgi import in_process_client
from tests.cli.test_monitor import log_traffic
from tests.cli.test_registry import home, ok
from tests.monitoring.test_alert_loop import Registryless

_ = home  # the autouse fixture of the CLI tests: a fresh MODELYARD_HOME per test

ALPHA = 0.05


def table(rng: np.random.Generator, rows: int, *, correlation: float = 0.9) -> dict[str, Any]:
    """A correlated pair (standard normal marginals whatever `correlation`), a skewed column,
    an independent one, and a categorical column."""
    pair = rng.multivariate_normal([0, 0], [[1, correlation], [correlation, 1]], rows)
    return {
        "a": pair[:, 0],
        "b": pair[:, 1],
        "skewed": rng.exponential(size=rows),
        "noise": rng.normal(size=rows),
        "colour": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
    }


def fitted(columns: dict[str, Any]) -> MultivariateReference:
    reference = fit_multivariate(columns, profile(columns))
    assert reference is not None
    return reference


def test_same_distribution_windows_fire_at_the_stated_rate() -> None:
    """200 (reference, window) pairs of one distribution, each reference fitted afresh: the
    test fires at about alpha (the threshold carries both halves' sampling error)."""
    rng = np.random.default_rng(1)
    fired = [
        multivariate_drift(fitted(table(rng, 600)), table(rng, size), alpha=ALPHA)
        for size in (40, 200) * 100
    ]
    rate = sum(drift is not None and drift.drifted for drift in fired) / len(fired)
    assert 0.01 <= rate <= ALPHA + 0.04  # binomial sd 0.015: three of them of slack
    scores = [drift.score for drift in fired if drift is not None]
    assert np.mean(np.array(scores) > 1) == rate  # the alert signal agrees with the verdict


def test_power_on_a_weaker_correlation() -> None:
    rng = np.random.default_rng(2)
    reference = fitted(table(rng, 2000))
    found = [multivariate_drift(reference, table(rng, 300, correlation=0.5)) for _ in range(30)]
    assert sum(drift is not None and drift.drifted for drift in found) >= 27


def test_a_flipped_correlation_is_found_jointly_and_missed_column_by_column() -> None:
    rng = np.random.default_rng(3)
    reference_rows, window_rows = table(rng, 3000), table(rng, 600, correlation=-0.9)
    reference, window = profile(reference_rows), profile(window_rows, reference=None)
    for numeric in ("ks", "psi", "wasserstein"):
        tests = {"a": numeric, "b": numeric, "skewed": numeric, "noise": numeric}
        for categorical in ("chisquare", "psi", "jensenshannon"):
            report = detect_drift(reference, window, tests={**tests, "colour": categorical})
            assert not any(column.drifted for column in report.columns), (numeric, categorical)
    drift = multivariate_drift(fitted(reference_rows), window_rows, domain_classifier=True)
    assert drift is not None and drift.drifted and drift.score > 1.2 and drift.p_value < 1e-6
    classifier = drift.domain_classifier
    assert classifier is not None and classifier.drifted and classifier.auc > 0.75
    assert "DRIFTED" in drift.verdict() and "tells the window apart" in drift.verdict()


def test_the_domain_classifier_holds_its_level() -> None:
    """Each fold's held-out rows give an exact test; pooled out-of-fold scores would not (their
    models saw the other folds' labels: 12% at alpha 0.05, measured)."""
    rng = np.random.default_rng(4)
    outcomes = []
    for _ in range(40):
        encoder = fitted(table(rng, 300))
        window = encoder.encode(table(rng, 150))  # encoded as the reference was
        result = classify_domains(encoder.sample, window, alpha=ALPHA, iterations=10)
        assert result is not None
        outcomes.append(result)
    assert sum(result.drifted for result in outcomes) <= 4  # 2 expected at most
    assert 0.45 < float(np.mean([result.auc for result in outcomes])) < 0.55


def test_too_little_data_gives_no_section() -> None:
    rng = np.random.default_rng(5)
    columns = table(rng, 30)
    assert fit_multivariate(columns, profile(columns)) is None  # under MIN_ROWS
    one = {"a": rng.normal(size=500)}
    assert fit_multivariate(one, profile(one)) is None  # one column: nothing to relate
    reference = fitted(table(rng, 500))
    assert multivariate_drift(reference, table(rng, 1)) is None
    small = multivariate_drift(reference, table(rng, 12), domain_classifier=True)
    assert small is not None and small.domain_classifier is not None
    tiny = multivariate_drift(reference, table(rng, 4), domain_classifier=True)
    assert tiny is not None and tiny.domain_classifier is None  # fewer rows than folds


def test_window_values_of_any_shape_are_encoded_not_trusted() -> None:
    """Strings in a numeric column, infinities, None, unseen levels, a missing or ragged column:
    missing values (the column mean), never an exception."""
    rng = np.random.default_rng(6)
    reference = fitted(table(rng, 500))
    window = table(rng, 50)
    window["a"] = np.array(["1.5", "x", None, "inf", 1e308] * 10, dtype=object)
    window["colour"] = np.array(["mauve", None] * 25, dtype=object)
    window["skewed"] = window["skewed"][:10]  # ragged: missing
    del window["noise"]
    drift = multivariate_drift(reference, window)
    assert drift is not None and np.isfinite([drift.error, drift.score, drift.p_value]).all()


def test_the_stored_reference_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    columns = table(rng, 800)
    write_reference(tmp_path, columns, {"y": columns["a"] > 0})
    stored = read_multivariate(tmp_path)
    assert stored is not None
    again = fitted(columns)
    assert [c.name for c in stored.columns] == ["a", "b", "skewed", "noise", "colour"]
    assert stored.columns[-1].levels is not None and set(stored.columns[-1].levels) == {
        "red", "green", "blue",
    }  # fmt: skip
    np.testing.assert_array_equal(stored.components, again.components)
    assert stored.sample.shape == (800, 5) and stored.error_rows == 400
    assert read_multivariate(tmp_path / "elsewhere") is None  # registered before: no file


def _stored(tmp_path: Path) -> dict[str, Any]:
    rng = np.random.default_rng(8)
    body: dict[str, Any] = json.loads(fitted(table(rng, 200)).to_bytes())
    return body


def _floats(*values: float) -> str:
    return base64.b64encode(np.array(values, "<f8").tobytes()).decode()


CRAFTED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "not a format": lambda body: body.update(format="pickle"),
    "extra field": lambda body: body.update(__reduce__="os.system"),
    "center not base64": lambda body: body.update(center="%%%"),
    "center too short": lambda body: body.update(center=_floats(0.0)),
    "center not float64": lambda body: body.update(center="AAAA"),
    "scale zero": lambda body: body.update(scale=_floats(*[0.0] * 5)),
    "scale NaN": lambda body: body.update(scale=_floats(*[float("nan")] * 5)),
    "components all kept": lambda body: body.update(components=_floats(*[0.1] * 25)),
    "components ragged": lambda body: body.update(components=_floats(*[0.1] * 7)),
    "components huge": lambda body: body.update(components=_floats(*[1e300] * 5)),
    "sample infinite": lambda body: body.update(sample=_floats(*[float("inf")] * 5)),
    "calibration negative": lambda body: body["calibration"].update(std=-1),
    "calibration rows text": lambda body: body["calibration"].update(rows="400"),
    "level share above one": lambda body: body["columns"][-1].update(levels={"red": 7.0}),
    "name repeated": lambda body: body["columns"][1].update(name="a"),
    "one column": lambda body: body.update(columns=body["columns"][:1]),
    "columns not a list": lambda body: body.update(columns={"a": 1}),
    "variance above one": lambda body: body.update(explained_variance=2),
}


@pytest.mark.parametrize("damage", sorted(CRAFTED))
def test_a_crafted_reference_is_refused(tmp_path: Path, damage: str) -> None:
    body = _stored(tmp_path)
    CRAFTED[damage](body)
    (tmp_path / REFERENCE_MULTIVARIATE).parent.mkdir(parents=True)
    (tmp_path / REFERENCE_MULTIVARIATE).write_text(json.dumps(body))
    with pytest.raises(InvalidInput, match="multivariate reference"):
        read_multivariate(tmp_path)


@pytest.mark.parametrize(
    "data", [b"", b"\xff\xfe", b"[" * 100_000, b'{"format": 1e999}', b"null", b"[]"]
)
def test_damaged_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="multivariate reference"):
        MultivariateReference.from_bytes(data)


def test_an_oversized_reference_and_a_bad_alpha_are_refused(tmp_path: Path) -> None:
    path = tmp_path / REFERENCE_MULTIVARIATE
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)  # sparse: no 64 MB written
    with pytest.raises(InvalidInput, match="over"):
        read_multivariate(tmp_path)
    rng = np.random.default_rng(13)
    with pytest.raises(ConfigurationError, match="alpha"):
        multivariate_drift(fitted(table(rng, 100)), table(rng, 10), alpha=1.5)


def log_rows(store: FileLogStore, columns: dict[str, Any], *, size: int = 50) -> None:
    now = datetime.now(UTC) - timedelta(seconds=1)
    rows = len(columns["a"])
    store.write([
        {"id": f"r{start}", "model": "fraud", "version": "1", "latency_ms": 1.0,
         "time": now.isoformat(timespec="milliseconds"),
         "inputs": {name: part[start : start + size].tolist() for name, part in columns.items()},
         "outputs": {"y": (columns["a"][start : start + size] > 0).tolist()}}
        for start in range(0, rows, size)
    ])  # fmt: skip


def test_the_report_section_signal_and_page(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    folder, store = tmp_path / "version", FileLogStore(tmp_path / "home", None)
    reference = table(rng, 2000)
    write_reference(folder, reference, {"y": reference["a"] > 0})
    log_rows(store, table(rng, 500, correlation=-0.9))
    report, _, _ = monitor_window(model="fraud", version=1, folder=folder,
                                  window=timedelta(minutes=5), store=store)  # fmt: skip
    drift = report.multivariate
    assert drift is not None and drift.drifted and drift.domain_classifier is None
    assert report.inputs is not None and not any(c.drifted for c in report.inputs.columns)
    rule = AlertRule(name="joint", model="fraud", signal="multivariate_drift", threshold=1.0)
    assert signal_value(rule, report) == drift.score > 1
    page = render_html(report)
    assert "Multivariate (joint distribution): DRIFTED" in page
    assert "multivariate" in report._repr_html_()
    (folder / REFERENCE_MULTIVARIATE).unlink()  # a version registered before: no section
    report, _, _ = monitor_window(model="fraud", version=1, folder=folder,
                                  window=timedelta(minutes=5), store=store)  # fmt: skip
    assert report.multivariate is None and signal_value(rule, report) is None


class Joint(Registryless):
    """A source whose every report carries `multivariate`."""

    def __init__(self, drift: MultivariateDrift) -> None:
        super().__init__()
        self.drift = drift

    def monitor(self, ref: str, *, window: timedelta = timedelta(hours=1)) -> MonitorReport:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        return MonitorReport(model="fraud", version=2, since=now, until=now, requests=9,
                             rows=500, inputs=None, predictions=None,
                             multivariate=self.drift)  # fmt: skip


def test_the_signal_becomes_a_gauge_and_a_prometheus_rule() -> None:
    rng = np.random.default_rng(12)
    drift = multivariate_drift(fitted(table(rng, 2000)), table(rng, 500, correlation=-0.9))
    assert drift is not None
    rules = [AlertRule(name="joint", model="fraud@production", signal="multivariate_drift",
                       op=">", threshold=1.0)]  # fmt: skip
    metrics = Metrics()
    loop = AlertLoop(rules, yard=Joint(drift), metrics=metrics, interval=60)
    assert anyio.run(loop.evaluate) == ["joint"]
    exported = metrics.exposition().decode()
    assert f'modelyard_multivariate_drift{{model="fraud",version="2"}} {drift.score}' in exported
    (rule,) = prometheus_rules(rules)["groups"][1]["rules"]
    assert rule["expr"] == 'modelyard_multivariate_drift{model="fraud"} > 1.0'


X = np.random.default_rng(10).multivariate_normal([0, 0, 0], np.eye(3) + 0.8, 1000)


def serve_traffic(home: Path) -> None:
    with Yard() as yard:
        model = LogisticRegression().fit(X, X[:, 0] > 0)
        yard.log_model(model, name="churn", input_example=X[:2], reference_data=X)
    rows = np.random.default_rng(11).normal(size=(300, 3)) * np.sqrt(1.8)  # no correlation
    log_traffic(home, rows, requests=10)


def test_yard_and_cli(home: Path) -> None:
    serve_traffic(home)
    with Yard() as yard:
        report = yard.monitor("churn", window=timedelta(minutes=5), domain_classifier=True)
    assert report.multivariate is not None and report.multivariate.drifted
    assert report.multivariate.domain_classifier is not None
    text = ok("monitor", "report", "churn", "--window", "5m", "--domain-classifier")
    assert "multivariate: DRIFTED" in text and "domain classifier auc" in text
    as_json = json.loads(ok("monitor", "report", "churn", "--json"))
    assert as_json["multivariate"]["drifted"] is True
    assert as_json["multivariate"]["domain_classifier"] is None  # opt-in


@pytest.fixture
def client(home: Path) -> Iterator[httpx.Client]:
    serve_traffic(home)
    with in_process_client(create_app(Settings())) as client:
        client.base_url = httpx.URL("http://testserver/api/v1")
        yield client


def test_api_and_remote_client(client: httpx.Client) -> None:
    params = {"ref": "churn", "window_seconds": "300"}
    answer = client.get("/monitor", params=params).json()
    assert answer["multivariate"]["drifted"] and answer["multivariate"]["domain_classifier"] is None
    remote = HttpPredictionLog(HttpRegistry(client, actor="test", owns_client=False))
    report = remote.report("churn", window=timedelta(minutes=5), domain_classifier=True)
    assert report.multivariate is not None and report.multivariate.domain_classifier is not None
