"""The runs pages: search (and its errors), one run with its step charts, a comparison."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.ui._run_charts import best, metric_chart, thin
from modelyard.ui._runs import duration
from tests.servers import running_server
from tests.ui.conftest import serious_violations

HOSTILE = '<script>alert("x")</script>'


def first_run_id(client: httpx.Client) -> str:
    found = re.search(r'href="/runs/([0-9a-f]{32})"', client.get("/runs").text)
    assert found, "no run on the runs page"
    return found[1]


def charts_of(page: str) -> dict[str, Any]:
    """The chart specs on a page, by title."""
    specs = [json.loads(html.unescape(s)) for s in re.findall(r'data-chart="([^"]*)"', page)]
    return {spec["key"]: spec for spec in specs}


def add_run(home: Path, **fields: Any) -> str:
    """A second run in the registry under `home`: `loss` at other steps than the first run."""
    from modelyard import Settings, Yard

    yard = Yard(Settings(home=home, user="bob"))
    try:
        with yard.start_run(fields.pop("name", "train-again"), **fields) as run:
            for step in range(0, 30, 3):
                run.log_metrics({"loss": 0.5 / (step + 1), "auc": 0.95}, step=step)
        return run.id
    finally:
        yard.close()


def test_the_runs_list_shows_the_run_and_what_it_made(ui_client: httpx.Client) -> None:
    page = ui_client.get("/runs")
    assert page.status_code == 200
    text = page.text
    assert "train-cancer" in text and "max_depth=2" in text and "loss=0.05" in text
    assert 'href="/version?ref=cancer%3A1"' in text and 'href="/version?ref=cancer%3A2"' in text
    assert 'action="/runs/compare"' in text and 'name="run"' in text
    assert "finished" in text and "ana" in text


def test_search_narrows_and_orders_the_runs(ui_client: httpx.Client, ui_copy: Path) -> None:
    add_run(ui_copy, params={"max_depth": 5})
    both = ui_client.get("/runs", params={"order": "metrics.loss"}).text
    assert both.index("train-again") < both.index("train-cancer")  # its last loss is lower
    found = ui_client.get("/runs", params={"q": "params.max_depth = '5'"}).text
    assert "train-again" in found and "train-cancer" not in found
    none = ui_client.get("/runs", params={"q": "metrics.loss < 0"}).text
    assert "No runs match this filter" in none


def test_more_shows_the_next_runs(ui_client: httpx.Client, ui_copy: Path) -> None:
    add_run(ui_copy)
    one = ui_client.get("/runs", params={"limit": "1"}).text
    assert one.count('name="run"') == 1 and "Show more runs" in one
    assert "limit=51" in one
    both = ui_client.get("/runs", params={"limit": "51"}).text
    assert both.count('name="run"') == 2 and "All matching runs are shown" in both


def test_an_invalid_filter_says_why_next_to_the_box(ui_client: httpx.Client) -> None:
    page = ui_client.get("/runs", params={"q": "metrics.loss <"})
    assert page.status_code == 400
    assert 'id="runs-error"' in page.text and "expected a value" in page.text
    assert 'aria-invalid="true"' in page.text and 'value="metrics.loss &lt;"' in page.text
    assert ui_client.get("/runs", params={"q": "colour = 'red'"}).status_code == 400
    assert ui_client.get("/runs", params={"order": "name sideways"}).status_code == 400
    bad_limit = ui_client.get("/runs", params={"limit": "lots"})
    assert bad_limit.status_code == 400 and "limit" in bad_limit.text


def test_the_run_page_charts_the_loss_by_step(ui_client: httpx.Client) -> None:
    run_id = first_run_id(ui_client)
    page = ui_client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    charts = charts_of(page.text)
    assert set(charts) == {"auc", "loss"}
    loss = charts["loss"]
    assert loss["x"] == list(range(20)) and loss["xlabel"] == "step"
    assert loss["series"][0]["values"][0] == 1.0 and loss["series"][0]["values"][19] == 0.05
    assert "<summary>Data</summary>" in page.text  # the table for screen readers
    assert "uPlot-1.6.32.iife.min.js" in page.text and "uPlot-1.6.32.min.css" in page.text
    assert page.text.index("uPlot-1.6.32.iife.min.js") < page.text.index("modelyard.js")
    assert 'href="/version?ref=cancer%3A2"' in page.text and "max_depth" in page.text


def test_an_unknown_run_is_a_404_page(ui_client: httpx.Client) -> None:
    page = ui_client.get("/runs/" + "0" * 32)
    assert page.status_code == 404 and "<html" in page.text and "does not exist" in page.text
    assert ui_client.get("/runs/compare", params={"run": "nope"}).status_code == 404


def test_compare_puts_two_runs_side_by_side(ui_client: httpx.Client, ui_copy: Path) -> None:
    first = first_run_id(ui_client)
    second = add_run(ui_copy, params={"max_depth": 5, "lr": 0.1})
    page = ui_client.get("/runs/compare", params={"run": [first, second]})
    assert page.status_code == 200
    text = page.text
    depth = re.search(r'<tr class="differs">\s*<th scope="row">.*?max_depth</th>', text, re.S)
    assert depth, "the differing param is not marked"
    assert re.search(r'class="num best"><strong>0\.0178571', text), "the lowest loss is not marked"
    assert re.search(r'class="num best"><strong>0\.95<', text), "the highest auc is not marked"
    loss = charts_of(text)["loss"]
    assert loss["x"] == sorted(set(range(20)) | set(range(0, 30, 3)))
    ours, theirs = (series["values"] for series in loss["series"])
    assert ours[loss["x"].index(21)] is None and theirs[loss["x"].index(21)] is not None
    assert theirs[loss["x"].index(1)] is None and ours[loss["x"].index(1)] == 0.5


def test_compare_needs_runs(ui_client: httpx.Client) -> None:
    page = ui_client.get("/runs/compare")
    assert page.status_code == 400 and "pick from 1 to 10 runs" in page.text
    many = ui_client.get("/runs/compare", params={"run": [f"{n:032x}" for n in range(11)]})
    assert many.status_code == 400


def test_hostile_strings_are_escaped(ui_client: httpx.Client, ui_copy: Path) -> None:
    run_id = add_run(ui_copy, name=HOSTILE, params={HOSTILE: HOSTILE}, tags={"t": HOSTILE},
                     code_revision=HOSTILE)  # fmt: skip
    for path in ("/runs", f"/runs/{run_id}", f"/runs/compare?run={run_id}"):
        text = ui_client.get(path).text
        assert HOSTILE not in text, path
        assert "&lt;script&gt;" in text, path
    chart = charts_of(ui_client.get(f"/runs/compare?run={run_id}").text)["loss"]
    assert HOSTILE in chart["series"][0]["label"]  # intact as data, escaped as markup


def test_charts_thin_long_histories_and_carry_no_nan() -> None:
    chart = metric_chart("loss", {"a": [(step, float(step)) for step in range(5000)],
                                  "b": [(1, float("nan"))]})  # fmt: skip
    spec = json.loads(chart.spec)
    assert len(spec["x"]) == 2000 and spec["x"][0] == 0 and spec["x"][-1] == 4999
    assert spec["series"][1]["values"][1] is None
    assert chart.thinned and len(chart.rows) == 100 and chart.steps == 5000
    assert thin([1, 2, 3], 5) == [1, 2, 3]


def test_the_best_value_depends_on_the_metric() -> None:
    assert best("val_loss", [0.3, 0.2, None]) == 0.2
    assert best("accuracy", [0.3, 0.2]) == 0.3
    assert best("accuracy", [0.3, None]) is None and best("auc", [0.5, 0.5]) is None


def test_durations_read_as_people_say_them() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert duration(start, start + timedelta(milliseconds=850)) == "850 ms"
    assert duration(start, start + timedelta(seconds=4.25)) == "4.2 s"
    assert duration(start, start + timedelta(seconds=185)) == "3 min 5 s"
    assert duration(start, start + timedelta(hours=2, minutes=10)) == "2 h 10 min"
    assert duration(start, None, now=start + timedelta(seconds=42)) == "42 s"


# in the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs_url(tmp_path_factory: pytest.TempPathFactory, ui_home: Path) -> Iterator[str]:
    """A real server over a copy of the UI's registry with a second run in it."""
    import shutil

    root = tmp_path_factory.mktemp("runs-browser")
    shutil.copytree(ui_home, root / "server-home")
    add_run(root / "server-home")
    with running_server(root, env={"MODELYARD_USER": "ana"}) as url:
        yield url


def test_the_runs_pages_in_the_browser(page: Any, two_runs_url: str) -> None:
    page.goto(f"{two_runs_url}/runs")
    assert serious_violations(page) == []
    page.get_by_role("link", name="train-cancer").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".chart canvas")
    assert page.locator(".chart canvas").count() >= 2
    assert serious_violations(page) == []
    page.go_back()
    for box in page.locator('input[name="run"]').all():
        box.check()
    page.get_by_role("button", name="Compare the ticked runs").click()
    page.wait_for_url("**/runs/compare?**")
    page.wait_for_selector(".chart canvas")
    assert page.locator(".chart").count() == 2 and page.locator(".chart canvas").count() >= 2
    assert page.locator("tr.differs").count() >= 1
    assert serious_violations(page) == []
    page.console.check()
