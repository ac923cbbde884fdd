"""Every page in Chromium, in the light and the dark scheme: no console error (so no script
or style the CSP blocked), and no serious or critical axe-core violation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.ui.conftest import serious_violations

ERROR_PAGE = "/models/no-such-model"
DOCUMENT_404 = "Failed to load resource: the server responded with a status of 404 (Not Found)"


def _run_ids(ui_url: str) -> list[str]:
    runs = httpx.get(f"{ui_url}/api/v1/runs", timeout=30).json()
    listed = runs["runs"] if isinstance(runs, dict) else runs
    return [run["id"] for run in listed]


def pages(ui_url: str) -> list[str]:
    """A path of each page of the UI, over the shared registry."""
    run = _run_ids(ui_url)[0]
    return [
        "/",
        "/?q=cancer",
        "/models/cancer",
        "/models/mlp",
        "/version?ref=cancer:2",
        "/version?ref=mlp:4",
        "/diff?a=mlp:2&b=mlp:3",
        "/version/card?ref=cancer:2",
        "/runs",
        f"/runs/{run}",
        f"/runs/compare?run={run}",
        "/monitoring",
        "/monitoring/cancer",
        "/audit",
        "/login",
        ERROR_PAGE,
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_is_accessible(page: Any, ui_url: str, scheme: str) -> None:
    page.emulate_media(color_scheme=scheme)
    problems: dict[str, Any] = {}
    for path in pages(ui_url):
        response = page.goto(f"{ui_url}{path}")
        assert response is not None
        assert response.status < 500, path
        if path == ERROR_PAGE:
            # The browser logs the document's own 404; nothing else may fail.
            assert response.status == 404
            page.wait_for_timeout(300)  # the console message may come after the load
            page.console.errors[:] = [e for e in page.console.errors if e != DOCUMENT_404]
        else:
            assert response.status == 200, (path, response.status)
        assert not page.console.errors, (path, page.console.errors)
        found = serious_violations(page)
        if found:
            problems[path] = found
    assert problems == {}


def test_the_error_page_says_what_went_wrong(page: Any, ui_url: str) -> None:
    response = page.goto(f"{ui_url}{ERROR_PAGE}")
    assert response is not None and response.status == 404
    assert page.locator("[role=alert]").inner_text()
    assert page.locator("h1").count() == 1
