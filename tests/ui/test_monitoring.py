"""The Monitoring pages over the shared registry, whose `cancer:2` served six hours of traffic
(the last two drifted), got feedback, and fired an alert that rolled production back."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.ui.conftest import serious_violations

HOSTILE = '<script>alert("x")</script>'
HOSTILE_TOO = '"><img src=x onerror=alert(1)>'


def test_the_list_shows_served_versions_with_drift_and_alert_state(ui_client: httpx.Client) -> None:
    page = ui_client.get("/monitoring")
    assert page.status_code == 200
    text = page.text
    assert 'href="/monitoring/cancer?version=2"' in text
    assert "firing" in text  # the rule that fired on the drift
    assert "%</span>" in text  # the drift share of the last hour
    assert "/monitoring/mlp" not in text  # never served


def test_the_model_page_shows_the_drift_that_fired_and_the_rollback(
    ui_client: httpx.Client,
) -> None:
    page = ui_client.get("/monitoring/cancer", params={"window": "1h", "span": "6h"})
    assert page.status_code == 200
    text = page.text
    assert "<h1>Monitoring cancer:2</h1>" in text
    assert text.count('class="chart"') == 3  # drift share, per-column scores, performance
    assert "vendor/uPlot-1.6.32.iife.min.js" in text
    assert 'class="heat"' in text and "drifted" in text
    assert "mean radius" in text  # one of the ten columns that read 60% high
    assert "cancer-input-drift" in text and "drift_share &gt;= 0.3" in text
    assert "logged; rolled back cancer@production" in text
    assert "alert cancer-input-drift: drift_share = 0.3333 &gt;= 0.3" in text  # the alias move
    assert "accuracy" in text  # performance from the feedback
    assert 'href="/monitoring/cancer/report?version=2&amp;window=1h"' in text


def test_the_drift_of_the_drifted_hours_shows(ui_client: httpx.Client) -> None:
    from modelyard.monitoring import read_reference

    page = ui_client.get("/monitoring/cancer", params={"window": "1h", "span": "6h"})
    rows = page.text.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")
    radius = next(row for row in rows if ">mean radius<" in row)
    assert radius.count("drifted") >= 2  # the last two hours at least
    assert read_reference is not None


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"window": "soon"}, "soon"),
        ({"window": "1m", "span": "2d"}, "2880 windows"),
        ({"window": "2h", "span": "1h"}, "shorter than the window"),
        ({"window": "1s"}, "shorter than a minute"),
    ],
)
def test_a_bad_window_is_a_400_naming_the_problem(
    ui_client: httpx.Client, query: dict[str, str], problem: str
) -> None:
    page = ui_client.get("/monitoring/cancer", params=query)
    assert page.status_code == 400
    assert problem in page.text


def test_unknown_models_and_versions_are_404(ui_client: httpx.Client) -> None:
    assert ui_client.get("/monitoring/nothing-here").status_code == 404
    page = ui_client.get("/monitoring/cancer", params={"version": "1"})
    assert page.status_code == 404 and "served: 2" in page.text
    assert ui_client.get("/monitoring/mlp/report").status_code == 404


def test_the_report_is_sandboxed(ui_client: httpx.Client) -> None:
    report = ui_client.get("/monitoring/cancer/report", params={"version": "2", "window": "3h"})
    assert report.status_code == 200
    policy = report.headers["content-security-policy"]
    assert policy == "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    assert report.text.lower().startswith("<!doctype html>") and "cancer:2 drift" in report.text
    assert ui_client.get("/monitoring/cancer/report", params={"window": "30d"}).status_code == 400


def test_hostile_column_names_are_escaped(ui_client: httpx.Client, ui_copy: Path) -> None:
    serve_hostile_model(ui_copy)
    page = ui_client.get("/monitoring/evil", params={"window": "1h", "span": "3h"})
    assert page.status_code == 200
    assert HOSTILE not in page.text and HOSTILE_TOO not in page.text
    assert "&lt;script&gt;alert(" in page.text  # shown, as text
    listing = ui_client.get("/monitoring")
    assert 'href="/monitoring/evil?version=1"' in listing.text


def serve_hostile_model(home: Path) -> None:
    """A model whose input columns are named to break out of HTML, with an hour of traffic."""
    from sklearn.linear_model import LinearRegression

    from modelyard import Settings, Yard
    from modelyard.serving import JsonLinesSink

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=[HOSTILE, HOSTILE_TOO])
    with Yard(Settings(home=home, user="ana")) as yard:
        yard.log_model(LinearRegression().fit(frame, frame.sum(axis=1)), name="evil",
                       input_example=frame[:2], reference_data=frame)  # fmt: skip
    now = datetime.now(UTC)
    records: list[dict[str, Any]] = [
        {"id": f"e{i}", "model": "evil", "version": "1",
         "time": (now - timedelta(minutes=60 - i)).isoformat(timespec="milliseconds"),
         "inputs": {HOSTILE: [float(i)], HOSTILE_TOO: [1.0]}, "outputs": {"output-0": [1.0]}}
        for i in range(60)
    ]  # fmt: skip
    JsonLinesSink(home / "predictions").write(records)


browser_only = pytest.mark.skipif(
    not os.environ.get("MODELYARD_TEST_CHROMIUM"), reason="needs MODELYARD_TEST_CHROMIUM"
)


@browser_only
@pytest.mark.parametrize("path", ["/monitoring", "/monitoring/cancer?window=1h&span=6h"])
def test_pages_in_a_browser(page: Any, ui_url: str, path: str) -> None:
    page.goto(ui_url + path)
    if "cancer" in path:
        page.wait_for_selector(".chart canvas")
        assert page.locator(".chart canvas").count() >= 3
        page.goto(ui_url + "/monitoring/cancer/report?window=1h")  # sandboxed: no console noise
        page.go_back()
        page.wait_for_selector(".chart canvas")
    assert serious_violations(page) == []
    page.console.check()


def test_a_viewer_sees_only_the_traffic_of_models_they_may_read(ui_copy: Path) -> None:
    from modelyard.serving import JsonLinesSink
    from tests.ui.auth import auth_client, grant_all, sign_in

    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    JsonLinesSink(ui_copy / "predictions").write([
        {"id": "m1", "model": "mlp", "version": "4", "time": now, "inputs": {"x": [[1.0] * 8]},
         "outputs": {"y": [[0.5] * 8]}},
    ])  # fmt: skip
    tokens = grant_all(ui_copy)
    with auth_client(ui_copy) as client:
        assert sign_in(client, tokens["rita"]).status_code == 303
        assert 'href="/monitoring/mlp?version=4"' in client.get("/monitoring").text
        client.cookies.clear()
        assert sign_in(client, tokens["cara"]).status_code == 303  # reads cancer only
        listing = client.get("/monitoring").text
        assert "/monitoring/cancer?version=2" in listing and "/monitoring/mlp" not in listing
        assert client.get("/monitoring/mlp").status_code == 403
        assert client.get("/monitoring/mlp/report").status_code == 403
        client.cookies.clear()
        assert sign_in(client, tokens["nobody"]).status_code == 303
        assert client.get("/monitoring").status_code == 403
