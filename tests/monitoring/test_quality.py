"""Data quality: each check fires on a planted defect and stays quiet on clean windows; the
signals reach alert rules, the CLI report, its JSON and its HTML."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import numpy as np
import orjson
import pandas as pd
import pytest

from modelyard.errors import ConfigurationError
from modelyard.monitoring import (
    AlertLoop,
    MonitorReport,
    Profile,
    QualityReport,
    QualityThresholds,
    data_quality,
    monitor_window,
    profile,
    render_html,
    write_reference,
)
from modelyard.monitoring._alerts import AlertRule, load_rules, signal_value
from modelyard.monitoring._export import prometheus_rules
from modelyard.serving import Metrics
from tests.cli.test_registry import home, ok
from tests.monitoring.conftest import table
from tests.monitoring.test_alert_loop import Registryless

_ = home  # the CLI test's fresh MODELYARD_HOME (autouse in this module: it only sets env)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def reference(rng: np.random.Generator) -> Profile:
    return profile(table(rng, 5000), seed=1)


def check(reference: Profile, frame: pd.DataFrame) -> QualityReport:
    return data_quality(reference, profile(frame, reference=reference, seed=2))


def signal(report: QualityReport, name: str) -> float | None:
    rule = AlertRule(name="q", model="fraud", signal=name, threshold=0.0, min_rows=1)
    monitored = MonitorReport(model="fraud", version=1, since=NOW, until=NOW, requests=1,
                              rows=report.rows, inputs=None, predictions=None,
                              quality=report)  # fmt: skip
    return signal_value(rule, monitored)


def test_clean_windows_stay_quiet(reference: Profile, rng: np.random.Generator) -> None:
    for rows in (50, 400, 3000):
        for _ in range(8):
            report = check(reference, table(rng, rows))
            assert report.issues == (), report.verdict()
            assert report.verdict() == "no data quality issues in 3 columns"
            assert signal(report, "missing_share") == 0.0
            assert signal(report, "unseen_categories:colour") == 0.0
            assert signal(report, "constant:age") == 0.0


def test_missing_values(reference: Profile, rng: np.random.Generator) -> None:
    frame = table(rng, 1000)
    frame.loc[:299, "age"] = np.nan
    report = check(reference, frame)
    assert report.issues == ("missing_share", "missing_share:age")
    assert signal(report, "missing_share:age") == pytest.approx(0.3)
    assert signal(report, "missing_share") == pytest.approx(0.1)
    assert report.verdict().startswith("2 data quality issues in 1 of 3 columns: 10.0% of")
    assert QualityReport.model_validate_json(report.model_dump_json()) == report
    # A reference with as many nulls makes the same window ordinary.
    dirty = table(rng, 5000)
    dirty.loc[:1499, "age"] = np.nan
    assert "missing_share:age" not in check(profile(dirty), frame).issues


def test_an_all_null_column_and_a_missing_one(reference: Profile, rng: np.random.Generator) -> None:
    frame = table(rng, 500)
    frame["age"] = np.nan
    frame["colour"] = pd.Series([None] * 500, dtype=object)
    report = check(reference, frame.drop(columns="income"))
    age, income, colour = report.columns
    assert age.missing_share == income.missing_share == colour.missing_share == 1.0
    assert (age.out_of_range_share, colour.unseen_categories, age.constant) == (None, None, False)
    assert income.issues == ("missing",) and signal(report, "out_of_range_share:age") is None
    assert report.missing_share == 1.0 and "missing_share" in report.issues


def test_type_mismatches(reference: Profile, rng: np.random.Generator) -> None:
    window = profile(table(rng, 1000), reference=reference)
    age = window.columns["age"]
    planted = Profile({**window.columns, "age": dataclasses.replace(age, mismatches=20)})
    report = data_quality(reference, planted)
    assert report.issues == ("type_mismatch_share:age",)
    assert signal(report, "type_mismatch_share:age") == pytest.approx(0.02)
    # A column of the other kind altogether: every value present is of the wrong type.
    strings = table(rng, 200).assign(age=lambda f: f["age"].round().astype(str))
    report = data_quality(reference, profile(strings))
    assert report.columns[0].type_mismatch_share == 1.0
    assert report.issues == ("type_mismatch_share:age",)


def test_out_of_range(reference: Profile, rng: np.random.Generator) -> None:
    frame = table(rng, 1000)
    frame.loc[:39, "income"] = -5.0  # incomes are lognormal: never negative
    frame.loc[40:59, "age"] = 1e6
    report = check(reference, frame)
    assert report.issues == ("out_of_range_share:age", "out_of_range_share:income")
    assert signal(report, "out_of_range_share:income") == pytest.approx(0.04)
    assert signal(report, "out_of_range_share:age") == pytest.approx(0.02)
    # Profiled without reference= the edges differ: the window's sample estimates the share.
    estimated = data_quality(reference, profile(frame, seed=3))
    assert estimated.issues == report.issues


def test_unseen_categories(reference: Profile, rng: np.random.Generator) -> None:
    frame = table(rng, 1000)
    frame.loc[:49, "colour"] = [f"new-{i % 7}" for i in range(50)]
    report = check(reference, frame)
    assert report.issues == ("unseen_categories:colour",)
    colour = report.columns[2]
    assert colour.unseen_categories == pytest.approx(0.05)
    assert colour.unseen_examples == ("new-0", "new-1", "new-2", "new-3", "new-4")
    assert signal(report, "unseen_categories:colour") == pytest.approx(0.05)
    assert "unseen categories (colour)" in report.verdict()


def test_unseen_categories_against_a_capped_reference(rng: np.random.Generator) -> None:
    # 60 levels, the reference keeps the 40 most frequent: the 20 others are in `other`.
    levels = np.array([f"c{i}" for i in range(60)])
    weights = np.linspace(2, 1, 60) / np.linspace(2, 1, 60).sum()

    def frame(rows: int) -> pd.DataFrame:
        return pd.DataFrame({"city": rng.choice(levels, rows, p=weights)})

    reference = profile(frame(20_000), category_cap=40)
    capped = reference.columns["city"]
    assert getattr(capped, "other", 0) > 0
    for rows in (20, 200, 2000, 20_000):  # the folded levels come back in every window
        clean = check(reference, frame(rows))
        assert clean.issues == () and clean.columns[0].unseen_categories == 0, clean.verdict()
    planted = frame(2000)
    planted.loc[:199, "city"] = "atlantis"  # 10%: more than any folded level could show
    report = check(reference, planted)
    assert report.issues == ("unseen_categories:city",)
    assert report.columns[0].unseen_examples == ("atlantis",)
    assert report.columns[0].unseen_categories == pytest.approx(0.1)


def test_constant_columns(reference: Profile, rng: np.random.Generator) -> None:
    frame = table(rng, 500).assign(colour="red", age=41.0)
    report = check(reference, frame)
    assert report.issues == ("constant:age", "constant:colour")
    assert signal(report, "constant:age") == signal(report, "constant:colour") == 1.0
    assert "out_of_range_share:age" not in report.issues
    # A column constant in the reference is flagged whatever the window holds.
    flat = profile(table(rng, 1000).assign(income=7.0))
    report = check(flat, table(rng, 300).assign(income=7.0))
    assert report.issues == ("constant:income",)
    assert report.columns[1].reference_constant


def test_thresholds_can_be_loosened(reference: Profile, rng: np.random.Generator) -> None:
    frame = table(rng, 1000)
    frame.loc[:99, "age"] = np.nan
    assert check(reference, frame).issues == ("missing_share:age",)
    loose = QualityThresholds(missing=0.2)
    window = profile(frame, reference=reference)
    assert data_quality(reference, window, thresholds=loose).issues == ()
    with pytest.raises(ValueError, match="less than or equal to 1"):
        QualityThresholds(missing=2)


def test_crafted_category_names_are_bounded_and_escaped(
    reference: Profile, rng: np.random.Generator
) -> None:
    frame = table(rng, 300)
    frame.loc[:9, "colour"] = "<script>alert(1)</script>" + "x" * 10_000
    report = check(reference, frame)
    assert len(report.columns[2].unseen_examples[0]) == 64
    monitored = MonitorReport(model="m", version=1, since=NOW, until=NOW, requests=1, rows=300,
                              inputs=None, predictions=None, quality=report)  # fmt: skip
    for page in (render_html(monitored), monitored._repr_html_()):
        assert "<script" not in page and "&lt;script&gt;" in page


def test_a_crafted_reference_gives_a_report(reference: Profile, rng: np.random.Generator) -> None:
    window = profile(table(rng, 300), reference=reference)
    age, income, colour = reference.columns.values()
    crafted = Profile({
        "age": dataclasses.replace(age, nulls=10**9, minimum=float("nan"), mismatches=-5),
        "income": dataclasses.replace(income, count=0, nulls=-3, maximum=-np.inf),
        "colour": dataclasses.replace(colour, frequencies={"red": -4, "x": 0}, other=-1),
    })  # fmt: skip
    report = data_quality(crafted, window)
    assert [column.column for column in report.columns] == ["age", "income", "colour"]
    assert QualityReport.model_validate_json(report.model_dump_json()) == report


def test_rules_take_the_quality_signals(tmp_path: Path) -> None:
    file = tmp_path / "rules.yaml"
    signals = ["missing_share", "missing_share:age", "type_mismatch_share:age",
               "out_of_range_share:x[0]", "unseen_categories:country", "constant:age",
               "column:age"]  # fmt: skip
    file.write_text("".join(f"- {{name: r{i}, model: fraud, signal: '{s}', threshold: 0.1}}\n"
                            for i, s in enumerate(signals)))  # fmt: skip
    assert [rule.signal for rule in load_rules(file, allowed_webhooks=[])] == signals
    for bad, message in [
        ("missing_shares:age", "unknown signal 'missing_shares:age'; did you mean 'missing_sh"),
        ("constant:", "unknown signal 'constant:'"),
        ("constant", "unknown signal 'constant'"),
        ("unseen_category:country", "did you mean 'unseen_categories'"),
    ]:
        file.write_text(f"- {{name: r, model: fraud, signal: '{bad}', threshold: 0.1}}\n")
        with pytest.raises(ConfigurationError, match=message):
            load_rules(file, allowed_webhooks=[])


def test_monitor_report_has_the_section(home: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from modelyard import Yard
    from tests.cli.test_monitor import log_traffic

    rng = np.random.default_rng(3)
    reference = rng.normal(size=(500, 3))
    with Yard() as yard:
        model = LogisticRegression().fit(reference, reference[:, 0] > 0)
        yard.log_model(model, name="churn", input_example=reference[:2], reference_data=reference)
    window = rng.normal(size=(500, 3))
    window[:50, 2] = 40.0  # far outside the reference's range
    window[:, 1] = np.nan  # logged as nulls: no distribution to test, and no crash
    log_traffic(home, window)
    text = ok("monitor", "report", "churn", "--window", "10m")
    assert "data quality: 3 data quality issues in 2 of 3 columns: 33.3% of the window's" in text
    assert "inputs: DRIFTED: 1 of 2 columns drifted" in text  # input-0[1] is not tested
    quality = text.split("\ndata quality:")[1]
    row = next(line for line in quality.splitlines() if line.startswith("input-0[2]"))
    assert "10.4%" in row and row.endswith("out_of_range")  # 50 planted, 2 by chance
    report = json.loads(ok("monitor", "report", "churn", "--window", "10m", "--json"))
    assert report["quality"]["issues"] == [
        "missing_share", "missing_share:input-0[1]", "out_of_range_share:input-0[2]"
    ]  # fmt: skip
    out = home.parent / "report"
    ok("monitor", "report", "churn", "--window", "10m", "--out", str(out))
    assert "<h2>Data quality: 3 data quality issues" in (out / "report.html").read_text()


class Quality(Registryless):
    """A source whose every report carries `quality`."""

    def __init__(self, quality: QualityReport) -> None:
        super().__init__()
        self.quality = quality

    def monitor(self, ref: str, *, window: timedelta = timedelta(hours=1)) -> MonitorReport:
        return MonitorReport(model="fraud", version=2, since=NOW, until=NOW, requests=9,
                             rows=self.quality.rows, inputs=None, predictions=None,
                             quality=self.quality)  # fmt: skip


def test_signals_become_gauges_and_prometheus_rules(
    reference: Profile, rng: np.random.Generator
) -> None:
    frame = table(rng, 1000)
    frame.loc[:299, "age"] = np.nan
    rules = [AlertRule(name="age-missing", model="fraud@production",
                       signal="missing_share:age", op=">", threshold=0.1),
             AlertRule(name="window-missing", model="fraud", signal="missing_share",
                       threshold=0.05)]  # fmt: skip
    metrics = Metrics()
    loop = AlertLoop(rules, yard=Quality(check(reference, frame)), metrics=metrics, interval=60)
    assert anyio.run(loop.evaluate) == ["age-missing", "window-missing"]
    exported = metrics.exposition().decode()
    for labels, value in [('check="missing_share",column="age"', "0.3"),
                          ('check="missing_share",column=""', "0.1"),
                          ('check="unseen_categories",column="colour"', "0.0"),
                          ('check="constant",column="income"', "0.0")]:  # fmt: skip
        assert f'modelyard_data_quality{{{labels},model="fraud",version="2"}} {value}' in exported
    expressions = [rule["expr"] for rule in prometheus_rules(rules)["groups"][1]["rules"]]
    assert expressions == [
        'modelyard_data_quality{model="fraud",column="age",check="missing_share"} > 0.1',
        'modelyard_data_quality{model="fraud",column="",check="missing_share"} >= 0.05',
    ]


@pytest.mark.parametrize(
    ("logged", "issues"),
    [
        (["x"] * 100, ("type_mismatch_share:a",)),
        ([None] * 100, ("missing_share", "missing_share:a")),
        (["x"] * 30 + [i / 50 - 0.7 for i in range(70)], ("type_mismatch_share:a",)),
    ],
)
def test_a_window_column_without_numbers_is_reported_not_fatal(
    tmp_path: Path, logged: list[object], issues: tuple[str, ...]
) -> None:
    rng = np.random.default_rng(4)
    folder = tmp_path / "model"
    folder.mkdir()
    columns = {"a": rng.normal(size=300), "b": rng.normal(size=300)}
    write_reference(folder, columns, {"y": rng.normal(size=300)})
    now = datetime.now(UTC)
    record = {"id": "r", "model": "m", "version": "1", "time": now.isoformat(), "latency_ms": 1.0,
              "inputs": {"a": logged, "b": rng.normal(size=100).tolist()},
              "outputs": {"y": rng.normal(size=100).tolist()}}  # fmt: skip
    day = tmp_path / "log" / "m" / "1"
    day.mkdir(parents=True)
    (day / f"{now.date().isoformat()}.jsonl").write_bytes(orjson.dumps(record) + b"\n")
    report, _, _ = monitor_window(model="m", version=1, folder=folder, predictions=tmp_path / "log",
                                  window=timedelta(minutes=5))  # fmt: skip
    assert report.quality is not None and report.quality.issues == issues
    assert report.inputs is not None
    tested = [column.column for column in report.inputs.columns]
    assert tested == (["a", "b"] if len(set(map(str, logged))) > 1 else ["b"])
