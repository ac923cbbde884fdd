"""The models page and a model page: search, paging, sorting by a metric, escaping, and staying
bounded at a thousand versions (the actions are in test_model_actions.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from modelyard import Settings, Yard
from modelyard.registry import Registry, summarize_models
from modelyard.registry._summaries import summaries_query
from tests.ui.conftest import serious_violations


@contextmanager
def yard_over(home: Path, user: str = "ana") -> Iterator[Yard]:
    yard = Yard(Settings(home=home, user=user))
    try:
        yield yard
    finally:
        yard.close()


def found(pattern: str, text: str, flags: int = 0) -> str:
    """The first group of `pattern`'s first match in `text`."""
    match = re.search(pattern, text, flags)
    assert match is not None, pattern
    return match[1]


def rows(text: str, table_id: str | None = None) -> list[str]:
    """The body rows of the page's first table (or the table with `table_id`)."""
    start = text.index(f'id="{table_id}"') if table_id else text.index("<table")
    body = text[text.index("<tbody>", start) : text.index("</tbody>", start)]
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_the_models_page_lists_models_with_states_and_aliases(ui_client: Any) -> None:
    page = ui_client.get("/")
    assert page.status_code == 200
    listed = rows(page.text)
    assert [found(r'href="/models/(\w+)"', row) for row in listed] == ["cancer", "mlp"]
    cancer, mlp = listed
    assert "champion → v2" in cancer and "production → v2" in cancer
    assert "state-production" in cancer and "Breast cancer classifier" in cancer
    assert "soup → v4" in mlp and "v4" in mlp and "state-registered" in mlp
    assert ui_client.get("/models", follow_redirects=False).headers["location"] == "/"


def test_plain_words_search_names_and_filters_search_versions(ui_client: Any) -> None:
    def listed(search: str) -> list[str]:
        text = ui_client.get("/", params={"q": search}).text
        return re.findall(r'<th scope="row"><a href="/models/([\w.-]+)"', text)

    assert listed("cAnc") == ["cancer"]
    assert listed("ml") == ["mlp"]
    assert listed("nothing-like-it") == []
    assert listed("tags.team = 'vision'") == ["mlp"]
    assert listed("metrics.auc >= 0.93") == ["cancer"]
    assert listed("metrics.auc >= 0.5") == ["cancer", "mlp"]
    assert listed("state = 'production' or name = 'mlp'") == ["cancer", "mlp"]


def test_an_invalid_filter_is_shown_beside_the_box_with_its_column(ui_client: Any) -> None:
    page = ui_client.get("/", params={"q": "metrics.auc >= and"})
    assert page.status_code == 400
    shown = html.unescape(found(r'<pre id="search-error"[^>]*>(.*?)</pre>', page.text, re.S))
    assert "invalid filter at column 16" in shown
    caret = shown.splitlines()[-1]
    assert caret.index("^") == shown.splitlines()[-2].index("and")
    assert 'id="q"' in page.text and 'aria-invalid="true"' in page.text
    assert ui_client.get("/", params={"q": "colour = 'red'"}).status_code == 400
    assert ui_client.get("/", params={"page": "0"}).status_code == 400
    assert ui_client.get("/", params={"sort": "size"}).status_code == 400


def test_models_are_paged_and_sorted(ui_copy: Path, ui_client: Any) -> None:
    with yard_over(ui_copy) as yard:
        for number in range(55):
            yard.registry.create_version(f"m{number:03d}", metrics={"auc": number / 100})
    first = ui_client.get("/").text
    assert len(rows(first)) == 50 and 'rel="next"' in first and 'rel="prev"' not in first
    second = ui_client.get("/", params={"page": "2"}).text
    names = re.findall(r'<th scope="row"><a href="/models/([\w.-]+)"', second)
    assert names == ["m049", "m050", "m051", "m052", "m053", "m054", "mlp"]  # cancer was first
    assert 'rel="prev"' in second and 'rel="next"' not in second
    newest = ui_client.get("/", params={"sort": "updated"}).text
    assert re.findall(r'<th scope="row"><a href="/models/([\w.-]+)"', newest)[0] == "m054"


def test_the_summaries_take_two_queries_whatever_the_page(ui_copy: Path) -> None:
    with yard_over(ui_copy) as yard:
        for number in range(30):
            yard.registry.create_version(f"m{number:03d}", metrics={"auc": 0.5})
        with counted_queries() as queries:
            page = summarize_models(local(yard).database, limit=20)
        assert len(page.models) == 20 and page.more and len(queries) == 2
        shown = summaries_query(filter="metrics.auc > 0.9", words=["a%"]).compile()
        assert "LIKE" in str(shown) and "version_metrics" in str(shown)


def local(yard: Yard) -> Registry:
    assert isinstance(yard.registry, Registry)
    return yard.registry


@contextmanager
def counted_queries() -> Iterator[list[str]]:
    """The SQL statements run by any engine in this process meanwhile."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "UPDATE")):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def test_the_model_page_shows_aliases_history_gates_and_versions(ui_client: Any) -> None:
    page = ui_client.get("/models/cancer")
    assert page.status_code == 200
    assert ">production</span></th>" in page.text and "recent move" in page.text
    assert [found(r">v(\d+)</a></th>", row) for row in rows(page.text, "versions-table")] == [
        "2",
        "1",
    ]
    mlp = ui_client.get("/models/mlp").text
    assert "A tiny network, fine-tuned three ways" in mlp
    assert "<code>metric=auc</code>" in mlp and "<code>value=0.875</code>" in mlp
    assert 'href="/version?ref=mlp%3A2">mlp:2</a>, <a href="/version?ref=mlp%3A3">mlp:3' in mlp
    assert ui_client.get("/models/nope").status_code == 404


def test_versions_sort_by_a_metric_either_way(ui_client: Any) -> None:
    def order(**params: str) -> list[str]:
        text = ui_client.get("/models/mlp", params=params).text
        return [found(r">v(\d+)</a></th>", row) for row in rows(text, "versions-table")]

    assert order() == ["4", "3", "2", "1"]
    assert order(sort="metrics.auc") == ["3", "2", "1", "4"]  # no auc: last either way
    assert order(sort="metrics.auc", dir="asc") == ["1", "2", "3", "4"]
    assert order(sort="number", dir="asc") == ["1", "2", "3", "4"]
    for bad in ({"sort": "metrics.a b"}, {"sort": "size"}, {"dir": "up"}, {"page": "-1"}):
        assert ui_client.get("/models/mlp", params=bad).status_code == 400


def test_htmx_gets_the_versions_table_alone(ui_client: Any) -> None:
    headers = {"HX-Request": "true", "HX-Target": "versions"}
    table = ui_client.get("/models/mlp?sort=metrics.auc", headers=headers)
    assert table.status_code == 200
    assert "<html" not in table.text and 'id="versions-table"' in table.text
    restore = {**headers, "HX-History-Restore-Request": "true"}
    assert "<html" in ui_client.get("/models/mlp", headers=restore).text


def test_stored_text_is_escaped(ui_copy: Path, ui_client: Any) -> None:
    hostile = "<script>alert(1)</script>"
    with yard_over(ui_copy) as yard:
        yard.registry.create_version("xss", metrics={"auc": 0.5}, tags={"t": hostile})
        yard.registry.update_model("xss", description=hostile, tags={"k": hostile})
        yard.registry.set_alias("xss", "prod-x", "xss:1", reason=hostile)
    for url in ("/", "/models/xss"):
        text = ui_client.get(url).text
        assert hostile not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text, url


def test_a_model_with_many_versions_pages_them_in_bounded_queries(ui_copy: Path) -> None:
    from modelyard.api import create_app
    from tests.asgi import in_process_client

    with yard_over(ui_copy) as yard:
        for number in range(1200):
            yard.registry.create_version("big", metrics={"auc": (number * 7919 % 1200) / 1200})
    app = create_app(Settings(home=ui_copy, user="ana"))
    with in_process_client(app) as client:
        client.base_url = httpx.URL("http://127.0.0.1")
        client.get("/models/big")  # warm: the first request reads settings and policies
        with counted_queries() as queries:
            page = client.get("/models/big", params={"sort": "metrics.auc", "page": "3"})
        listed = rows(page.text, "versions-table")
        assert page.status_code == 200 and len(listed) == 50
        assert len(queries) <= 12, queries
        aucs = [float(re.findall(r'<td class="num">([\d.]+)</td>', row)[0]) for row in listed]
        assert aucs == sorted(aucs, reverse=True) and aucs[0] < 1 - 100 / 1200 + 1e-9
        assert 'rel="prev"' in page.text and 'rel="next"' in page.text


@pytest.mark.usefixtures("ui_home")
def test_the_pages_render_in_chromium_accessibly(page: Any, ui_url: str) -> None:
    for path in ("/", "/models/cancer", "/models/mlp"):
        page.goto(f"{ui_url}{path}")
        page.console.check()
        assert serious_violations(page) == [], path
    page.goto(f"{ui_url}/?q=name+%3D")  # 400: Chromium logs the status, nothing else
    assert page.locator("#search-error").is_visible()
    assert serious_violations(page) == []


def test_sorting_swaps_only_the_table(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/models/mlp")
    page.evaluate("window.stayed = true")
    page.get_by_role("link", name="auc").click()
    page.wait_for_url("**/models/mlp?sort=metrics.auc")
    page.wait_for_selector("#versions-table th[aria-sort] >> text=auc")
    first = page.locator("#versions-table tbody tr th a").first.inner_text()
    assert first == "v3" and page.evaluate("window.stayed") is True
    page.get_by_label("Order").select_option("asc")
    page.get_by_role("button", name="Sort").click()
    page.wait_for_url("**dir=asc**")
    page.wait_for_function(
        "document.querySelector('#versions-table tbody tr th a').textContent === 'v1'"
    )
    assert page.evaluate("window.stayed") is True
    page.console.check()
