"""The version page, its lineage graph, the diff and the model card (HTML and Markdown)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard import Settings, Yard
from modelyard.registry import Lineage, LineageEdge
from modelyard.ui._lineage import MAX_NODES, MAX_SIDE, layout
from tests.ui.conftest import serious_violations

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def nodes(html: str) -> list[str]:
    """The versions the lineage graph draws, in order."""
    svg = html[html.index('<svg class="lineage"') : html.index("</svg>", html.index("lineage"))]
    return re.findall(r'<a href="/version\?ref=[^"]+" class="node[^"]*"[^>]*>\s*<rect[^>]*/>\s*'
                      r"<text[^>]*>([^<]+)</text>", svg)  # fmt: skip


def test_a_version_page_shows_what_the_version_records(ui_client: httpx.Client) -> None:
    page = ui_client.get("/version", params={"ref": "cancer:2"})
    assert page.status_code == 200, page.text
    html = page.text
    for part in ("<h1>cancer:2", "state-production", "auc", "max_depth", "team",
                 "Breast cancer classifier", "mean radius", "FP64", "model.skops",
                 "scikit-learn", "Python", "HistGradientBoostingClassifier", "/runs/", "ready",
                 "/version/card?ref=cancer%3A2"):  # fmt: skip
        assert part in html, part
    model = ui_client.get("/api/v1/models/cancer").json()
    here = [alias for alias, number in model["aliases"].items() if number == 2]
    assert "champion" in here
    for alias in here:
        assert f'<span class="badge alias">@{alias}</span>' in html, alias
    assert nodes(html) == ["cancer:1", "cancer:2"]
    assert 'class="node current" aria-current="page"' in html


def test_an_alias_reference_shows_the_version_it_names(ui_client: httpx.Client) -> None:
    named = ui_client.get("/api/v1/version", params={"ref": "cancer@production"}).json()
    html = ui_client.get("/version", params={"ref": "cancer@production"}).text
    assert f"<h1>cancer:{named['number']}" in html


def test_a_merge_draws_both_parents(ui_client: httpx.Client) -> None:
    html = ui_client.get("/version", params={"ref": "mlp:4"}).text
    assert nodes(html) == ["mlp:1", "mlp:2", "mlp:3", "mlp:4"]
    assert html.count('data-relation="merge"') == 2
    assert "<title>mlp:2 → mlp:4 (merge)</title>" in html
    assert "<title>mlp:3 → mlp:4 (merge)</title>" in html
    assert "@soup" in html
    assert "No importance was stored" in html


@pytest.mark.parametrize(
    ("url", "status"),
    [("/version?ref=nope:1", 404), ("/version?ref=cancer:99", 404), ("/version", 400),
     ("/version?ref=bad%20name", 400), ("/diff?a=cancer:1", 400),
     ("/diff?a=cancer:1&b=mlp:9", 404), ("/version/card?ref=nope", 404),
     ("/version/card.md?ref=cancer:7", 404)],
)  # fmt: skip
def test_bad_references_get_an_error_page(ui_client: httpx.Client, url: str, status: int) -> None:
    page = ui_client.get(url)
    assert page.status_code == status, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in page.text


def test_importance_is_shown_as_bars(ui_client: httpx.Client) -> None:
    html = ui_client.get("/version", params={"ref": "cancer:2"}).text
    section = html[html.index('id="importance"') : html.index('id="signature"')]
    assert section.count('class="importance-bar"') == 15
    assert "worst perimeter" in section and "and 15 more features" in section
    assert 'rect width="240.0"' in section  # the first is the longest bar


def test_stored_text_is_escaped_everywhere(ui_client: httpx.Client, ui_copy: Path) -> None:
    with Yard(Settings(home=ui_copy, user="ana")) as yard:
        yard.registry.create_version("mlp", parents=["mlp:4"], relation="quantize",
                                     description=HOSTILE, tags={"note": HOSTILE},
                                     params={"p": HOSTILE}, metrics={"auc": 0.9,
                                     "optimize.size_ratio": 3.5})  # fmt: skip
        yard.set_tag("mlp:5", "intended_use", HOSTILE)
    for url in ("/version?ref=mlp:5", "/version?ref=mlp:4", "/version/card?ref=mlp:5",
                "/diff?a=mlp:4&b=mlp:5"):  # fmt: skip
        html = ui_client.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;" in html or url.endswith("mlp:4"), url
    steps = ui_client.get("/version", params={"ref": "mlp:4"}).text
    assert "Optimisation steps and what they traded" in steps and ">3.5×<" in steps
    assert '<text class="relation"' in steps and ">quantize</text>" in steps
    markdown = ui_client.get("/version/card.md", params={"ref": "mlp:5"}).text
    front, body = markdown.split("\n---\n", 1)  # the YAML holds it as a quoted string
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_the_diff_lists_changed_tensors(ui_client: httpx.Client) -> None:
    page = ui_client.get("/diff", params={"a": "mlp:1", "b": "mlp:3"})
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Compare mlp:1 with mlp:3</h1>" in html and "<!doctype html>" in html
    tensors = html[html.index('class="tensors"') :]
    changed = re.findall(r"<th scope=\"row\"><code>([^<]+)</code></th><td>changed</td>", tensors)
    assert changed == ["layer0.bias", "layer0.weight", "layer1.bias", "layer1.weight"]
    assert "8×8" in tensors and "100.0%" in tensors
    assert "lr" in html and "0.0001" in html


def test_htmx_gets_the_diff_alone_and_the_free_box_wins(ui_client: httpx.Client) -> None:
    fragment = ui_client.get("/diff", params={"a": "cancer:2", "b": "cancer:1", "other": ""},
                             headers={"hx-request": "true"}).text  # fmt: skip
    assert "<!doctype" not in fragment and "cancer:2 → cancer:1" in fragment
    assert "max_depth" in fragment  # the model structure changed too
    other = ui_client.get("/diff", params={"a": "mlp:1", "b": "mlp:2", "other": " mlp@soup "},
                          headers={"hx-request": "true"}).text  # fmt: skip
    assert "mlp:1 → mlp:4" in other  # the alias, resolved


def test_a_bad_reference_in_the_compare_form_is_said_in_place(ui_client: httpx.Client) -> None:
    answer = ui_client.get("/diff", params={"a": "mlp:1", "b": "mlp:2", "other": "mlp:77"},
                           headers={"hx-request": "true"})  # fmt: skip
    assert answer.status_code == 200  # htmx swaps only 2xx: the message shows where asked
    assert answer.text.startswith('<p class="error" role="alert">Cannot compare (404)')
    assert "<!doctype" not in answer.text


def test_the_compare_form_offers_nearby_versions(ui_client: httpx.Client) -> None:
    html = ui_client.get("/version", params={"ref": "mlp:3"}).text
    form = html[html.index('hx-get="/diff"') : html.index("</form>", html.index('hx-get="/diff"'))]
    assert re.findall(r'<option value="([^"]+)"', form) == ["mlp:4", "mlp:2", "mlp:1"]
    assert '<option value="mlp:2" selected>' in form  # its parent, to start with


def test_the_card_has_every_section(ui_client: httpx.Client) -> None:
    html = ui_client.get("/version/card", params={"ref": "cancer@champion"}).text
    for heading in ("Model card for cancer", "Model details", "Uses", "Direct use",
                    "Out-of-scope use", "Training details", "Evaluation", "Feature importance",
                    "Lineage", "Technical specifications", "Signature", "Environment"):  # fmt: skip
        assert f">{heading}</h" in html, heading
    assert "train-cancer" in html and "worst perimeter" in html
    download = ui_client.get("/version/card.md", params={"ref": "cancer@champion"})
    assert download.headers["content-type"].startswith("text/markdown")
    assert download.headers["content-disposition"] == 'attachment; filename="cancer-2-card.md"'
    assert download.text.startswith("---\nlibrary_name: sklearn\n")
    assert "## Feature importance" in download.text and "| auc | 0.94 |" in download.text


def test_a_long_chain_draws_a_bounded_graph(tmp_path: Path) -> None:
    from modelyard.api import create_app
    from tests.asgi import in_process_client

    home = tmp_path / "home"
    with Yard(Settings(home=home, user="ana")) as yard:
        for _ in range(2000):
            yard.registry.create_version("chain", metrics={"auc": 0.5})
    with in_process_client(create_app(Settings(home=home, user="ana"))) as client:
        client.base_url = httpx.URL("http://127.0.0.1")
        html = client.get("/version", params={"ref": "chain:1000"}).text
        near_start = client.get("/version", params={"ref": "chain:3"}).text
    drawn = nodes(html)
    assert len(drawn) == MAX_NODES
    assert drawn[0] == f"chain:{1000 - MAX_SIDE}" and drawn[-1] == f"chain:{1000 + MAX_SIDE}"
    assert "… older ancestors above, not shown" in html
    assert "… newer descendants below, not shown" in html
    assert "older ancestors" not in near_start and nodes(near_start)[0] == "chain:1"


def test_lineage_walks_only_the_generations_asked_for(tmp_path: Path) -> None:
    with Yard(Settings(home=tmp_path / "home", user="ana")) as yard:
        for _ in range(50):
            yard.registry.create_version("chain")
        yard.registry.create_version("chain", parents=["chain:10", "chain:20"])
        near = yard.registry.lineage("chain:20", depth=2)
        whole = yard.registry.lineage("chain:20")
    assert near.ancestors == ["chain:19", "chain:18"]
    assert sorted(near.descendants) == ["chain:21", "chain:22", "chain:51"]
    assert len(whole.ancestors) == 19 and len(whole.descendants) == 31


def test_the_layout_puts_children_below_their_parents() -> None:
    edges = [("m:1", "m:2", "parent"), ("m:1", "m:3", "quantize"), ("m:2", "m:4", "merge"),
             ("m:3", "m:4", "merge"), ("m:1", "m:4", "merge")]  # fmt: skip
    lineage = Lineage(
        root="m:4",
        ancestors=["m:2", "m:3", "m:1"],
        descendants=[],
        edges=[LineageEdge(parent=p, child=c, relation=r) for p, c, r in edges],
    )
    graph = layout(lineage)
    where = {box.ref: box for box in graph.boxes}
    assert where["m:1"].y < where["m:2"].y == where["m:3"].y < where["m:4"].y
    assert where["m:2"].x < where["m:3"].x
    labels = {(a.parent, a.child): a.label for a in graph.arrows}
    assert labels[("m:1", "m:2")] == "" and labels[("m:1", "m:3")] == "quantize"
    skipping = next(a for a in graph.arrows if (a.parent, a.child) == ("m:1", "m:4"))
    assert skipping.label_x > max(box.x for box in graph.boxes)  # bent around, not through
    assert all(box.x + 130 <= graph.width and box.y + 30 <= graph.height for box in graph.boxes)


# in Chromium --------------------------------------------------------------------------------


def test_the_version_page_in_a_browser(page: Any, ui_url: str) -> None:
    for ref in ("cancer:2", "mlp:4"):
        page.goto(f"{ui_url}/version?ref={ref}")
        assert page.locator("svg.lineage a.node").count() >= 2
        assert serious_violations(page) == [], ref
    page.console.check()


def test_picking_a_version_swaps_the_diff_in(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/version?ref=mlp:3")
    page.wait_for_function("() => window.htmx !== undefined")
    page.select_option("#diff-b", "mlp:1")
    page.locator("#diff-result table.tensors").wait_for()
    assert page.url.endswith("/version?ref=mlp:3")  # swapped in place, no navigation
    assert page.locator("#diff-result h3").inner_text() == "mlp:3 → mlp:1"
    assert page.locator("#diff-result table.tensors tbody tr").count() == 4
    page.fill("#diff-other", "mlp@soup")
    page.press("#diff-other", "Enter")
    page.locator("#diff-result h3", has_text="mlp:3 → mlp:4").wait_for()
    assert serious_violations(page) == []
    page.console.check()


def test_the_card_page_in_a_browser(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/version/card?ref=cancer@champion")
    assert page.locator("h2").count() >= 7
    assert serious_violations(page) == []
    page.console.check()
