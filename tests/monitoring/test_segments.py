"""Drift and performance per segment: a shift planted in one country is found there and not in
the others, though the whole window does not drift; performance per segment from feedback;
numeric segment columns; a bad segment column through the SDK, the CLI and the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Yard
from modelyard._remote import HttpRegistry
from modelyard._remote_monitoring import HttpPredictionLog
from modelyard.api import create_app
from modelyard.errors import InvalidInput
from modelyard.monitoring import (
    FileLogStore,
    MonitorReport,
    SegmentReport,
    monitor_window,
    render_html,
    write_reference,
)
from modelyard.monitoring._segments import MAX_SEGMENTS, MIN_ROWS
from tests.asgi import in_process_client
from tests.cli.test_monitor import log_traffic
from tests.cli.test_registry import home, ok, run

_ = home  # the autouse fixture of the CLI tests: a fresh MODELYARD_HOME per test

COUNTRIES = np.array(["DE", "IT", "ES", "FR", "NL", "LU"])
SHARES = np.array([0.3, 0.25, 0.2, 0.1, 0.14, 0.01])
NUMBERS = ["a", "b", "c", "d", "e"]


def table(
    rng: np.random.Generator, rows: int, *, shifted: str | None = None
) -> tuple[dict[str, Any], np.ndarray[Any, Any]]:
    """Inputs (five numbers, a colour, a country) and class probabilities that follow `a`;
    the rows of country `shifted` have a, b and c moved by 1.5 standard deviations: half the
    columns of that segment, but under half of the whole window's (a, b, c of seven)."""
    country = rng.choice(COUNTRIES, rows, p=SHARES)
    numbers = rng.normal(size=(rows, len(NUMBERS)))
    if shifted is not None:
        numbers[country == shifted, :3] += 1.5
    positive = 1 / (1 + np.exp(-3 * numbers[:, 0]))
    inputs: dict[str, Any] = dict(zip(NUMBERS, numbers.T, strict=True))
    inputs["colour"] = rng.choice(["red", "green", "blue"], rows)
    inputs["country"] = country
    return inputs, np.column_stack([1 - positive, positive])


def log(
    store: FileLogStore, inputs: dict[str, Any], outputs: np.ndarray[Any, Any], *, size: int
) -> list[str]:
    """Write the rows as requests of `size` rows; their ids."""
    now = datetime.now(UTC) - timedelta(seconds=1)
    records = [
        {"id": f"r{start}", "model": "fraud", "version": "1", "latency_ms": 1.0,
         "time": now.isoformat(timespec="milliseconds"),
         "inputs": {name: values[start : start + size].tolist() for name, values in inputs.items()},
         "outputs": {"proba": outputs[start : start + size].tolist()}}
        for start in range(0, len(outputs), size)
    ]  # fmt: skip
    store.write(records)
    return [record["id"] for record in records]


@pytest.fixture
def served(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, FileLogStore]:
    """A version folder with a reference, and an empty log."""
    folder = tmp_path / "version"
    inputs, outputs = table(rng, 5000)
    write_reference(folder, inputs, {"proba": outputs})
    return folder, FileLogStore(tmp_path / "predictions", tmp_path / "feedback")


def report_of(folder: Path, store: FileLogStore, segment: str | None) -> MonitorReport:
    return monitor_window(model="fraud", version=1, folder=folder, window=timedelta(minutes=5),
                          store=store, segment=segment)[0]  # fmt: skip


def by_value(report: MonitorReport) -> dict[str, SegmentReport]:
    return {segment.value: segment for segment in report.segments}


def test_a_shift_in_one_segment_is_found_there_only(
    served: tuple[Path, FileLogStore], rng: np.random.Generator
) -> None:
    folder, store = served
    inputs, outputs = table(rng, 4000, shifted="FR")
    ids = log(store, inputs, outputs, size=20)
    truth = (inputs["a"] > 0).astype(int)
    truth[inputs["country"] == "FR"] ^= 1  # the model is wrong on every French row
    store.write_feedback("fraud", [{"id": i, "label": truth[k * 20 : k * 20 + 20].tolist()}
                                   for k, i in enumerate(ids)])  # fmt: skip
    report = report_of(folder, store, "country")
    assert report.inputs is not None and not report.inputs.drifted  # diluted in the window
    segments = by_value(report)
    assert list(segments) == ["DE", "IT", "ES", "NL", "FR", "LU"]  # the largest first
    france = segments["FR"]
    assert france.drifted and france.inputs is not None and france.inputs.drifted
    assert {"a", "b", "c"} <= {c.column for c in france.inputs.columns if c.drifted}
    assert "country" not in {c.column for c in france.inputs.columns}  # constant in a segment
    assert france.predictions is not None and france.predictions.drifted
    for value in ("DE", "IT", "ES", "NL"):
        assert not segments[value].drifted, value
    tiny = segments["LU"]
    assert tiny.rows < MIN_ROWS and tiny.inputs is None and tiny.note is not None
    assert "too few rows" in tiny.note and tiny.summary()[3].startswith("too few rows")
    # Rows and requests add up; performance comes from the labels of each segment's rows.
    assert sum(s.rows for s in segments.values()) == report.rows == 4000
    assert france.requests == len({k // 20 for k in np.flatnonzero(inputs["country"] == "FR")})
    assert france.performance is not None and france.performance.metrics["accuracy"] == 0
    assert segments["DE"].performance is not None
    assert segments["DE"].performance.metrics["accuracy"] == 1
    assert segments["DE"].performance.rows == segments["DE"].rows
    assert france.estimated_accuracy is not None and 0.5 < france.estimated_accuracy < 1
    assert france.summary()[-1] == "0" and "DRIFTED" in france.summary()[3]
    page = render_html(report)
    assert "Segments by country" in page and "<td>FR</td>" in page
    assert "segments" in report._repr_html_()
    assert MonitorReport.model_validate_json(report.model_dump_json()) == report


def test_without_a_segment_the_report_has_none(
    served: tuple[Path, FileLogStore], rng: np.random.Generator
) -> None:
    folder, store = served
    log(store, *table(rng, 200), size=50)
    assert report_of(folder, store, None).segments == ()


def test_many_values_fold_into_other_and_missing_is_a_segment(
    served: tuple[Path, FileLogStore], rng: np.random.Generator
) -> None:
    folder, store = served
    inputs, outputs = table(rng, 3000)
    country = rng.choice([f"c{i:02d}" for i in range(30)], 3000).astype(object)
    country[:100] = None
    country[100:300] = "<script>alert(1)</script>"  # values are untrusted: escaped on the page
    inputs["country"] = country
    log(store, inputs, outputs, size=100)
    report = report_of(folder, store, "country")
    segments = report.segments
    assert segments[0].value == "<script>alert(1)</script>" and segments[0].rows == 200
    assert "<script" not in render_html(report) + report._repr_html_()
    assert "&lt;script&gt;alert(1)" in render_html(report)
    values = [segment.value for segment in segments]
    assert len(values) == MAX_SEGMENTS + 2 and values[-2:] == ["(other)", "(missing)"]
    assert segments[-1].rows == 100 and segments[-2].rows > MIN_ROWS
    assert segments[-2].inputs is not None  # the folded values are tested together


def test_numeric_segment_columns(
    served: tuple[Path, FileLogStore], rng: np.random.Generator, tmp_path: Path
) -> None:
    folder, store = served
    inputs, outputs = table(rng, 3000)
    log(store, inputs, outputs, size=100)
    # Many distinct values: ten bins between the reference's deciles, in order.
    bins = report_of(folder, store, "a").segments
    assert len(bins) == 10 and bins[0].value.startswith("< ") and bins[-1].value.startswith(">=")
    assert bins[1].value.startswith("[") and all(200 < b.rows < 400 for b in bins)
    assert not any(b.inputs is not None and b.inputs.drifted for b in bins[1:-1])
    # Few distinct values: one segment per value.
    reference, _ = table(rng, 5000)
    reference["b"] = np.round(reference["b"]).clip(-1, 1)
    write_reference(folder, reference, {"proba": outputs})
    inputs["b"] = np.round(inputs["b"]).clip(-1, 1)
    store = FileLogStore(tmp_path / "other", None)
    log(store, inputs, outputs, size=100)
    values = [segment.value for segment in report_of(folder, store, "b").segments]
    assert values == ["-1", "0", "1"]


def test_a_numeric_segment_column_with_nulls_is_still_binned(
    served: tuple[Path, FileLogStore], rng: np.random.Generator
) -> None:
    """A logged null (JSON null) makes the column an object array of numbers: it is binned as
    numbers, not one segment per distinct float."""
    folder, store = served
    inputs, outputs = table(rng, 3000)
    inputs["a"] = inputs["a"].astype(object)
    inputs["a"][::50] = None
    log(store, inputs, outputs, size=100)
    segments = report_of(folder, store, "a").segments
    assert len(segments) == 11 and segments[-1].value == "(missing)"
    assert segments[0].value.startswith("< ") and segments[-2].value.startswith(">=")


def test_a_bad_segment_column_names_the_columns(served: tuple[Path, FileLogStore]) -> None:
    folder, store = served
    with pytest.raises(InvalidInput, match=r"'nope' is not an input column .* a, b, c, d, e"):
        report_of(folder, store, "nope")


# Through the facade: Yard.monitor, the CLI and the API (a model on a 2-D input: x[0], …)

X = np.random.default_rng(7).normal(size=(400, 3))


def serve_traffic(home: Path) -> None:
    with Yard() as yard:
        model = LogisticRegression().fit(X, X[:, 0] > 0)
        yard.log_model(model, name="churn", input_example=X[:2], reference_data=X)
        rows = np.random.default_rng(8).normal(size=(300, 3))
        rows[:, 1] = np.round(rows[:, 1]).clip(-1, 1)  # a column of three values
        rows[rows[:, 1] == 1, 0] += 2  # shifted where it is 1
    log_traffic(home, rows, requests=10)


def test_yard_and_cli(home: Path) -> None:
    serve_traffic(home)
    with Yard() as yard:
        report = yard.monitor("churn", window=timedelta(minutes=5), segment="input-0[1]")
    assert [s.value for s in report.segments] == ["-1", "0", "1"]
    assert all(s.requests == 10 for s in report.segments)  # every request has rows of each
    table = ok("monitor", "report", "churn", "--window", "5m", "--segment", "input-0[1]")
    assert "segments by input-0[1], each against the whole reference:" in table
    header = next(line for line in table.splitlines() if line.startswith("segment "))
    assert header.split()[:3] == ["segment", "rows", "requests"]
    row = next(line for line in table.splitlines() if line.startswith("1 "))
    assert "DRIFTED" in row and "input-0[0]" in row
    as_json = json.loads(ok("monitor", "report", "churn", "--segment", "input-0[1]", "--json"))
    assert [s["value"] for s in as_json["segments"]] == ["-1", "0", "1"]
    code, _, err = run("monitor", "report", "churn", "--segment", "country")
    assert code != 0 and "segment column 'country' is not an input column" in err
    assert "input-0[0], input-0[1], input-0[2]" in err


@pytest.fixture
def client(home: Path) -> Iterator[httpx.Client]:
    serve_traffic(home)
    from modelyard import Settings

    with in_process_client(create_app(Settings())) as client:
        client.base_url = httpx.URL("http://testserver/api/v1")
        yield client


def test_api_and_remote_client(client: httpx.Client) -> None:
    params = {"ref": "churn", "window_seconds": "300"}
    answer = client.get("/monitor", params={**params, "segment": "input-0[1]"})
    assert answer.status_code == 200
    assert [s["value"] for s in answer.json()["segments"]] == ["-1", "0", "1"]
    bad = client.get("/monitor", params={**params, "segment": "<script>"})
    assert bad.status_code == 400 and "'<script>' is not an input column" in bad.text
    page = client.get("/monitor", params={**params, "segment": "input-0[1]", "format": "html"})
    assert "Segments by input-0[1]" in page.text
    remote = HttpPredictionLog(HttpRegistry(client, actor="test", owns_client=False))
    report = remote.report("churn", window=timedelta(minutes=5), segment="input-0[1]")
    assert [s.value for s in report.segments] == ["-1", "0", "1"]
    with pytest.raises(InvalidInput, match="not an input column"):
        remote.report("churn", window=timedelta(minutes=5), segment="x")
