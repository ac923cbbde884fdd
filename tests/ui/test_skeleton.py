"""The UI's frame: static files, the error page, headers."""

from __future__ import annotations

from typing import Any


def test_static_files_are_served_with_their_licences(ui_client: Any) -> None:
    vendored = ("htmx-2.0.11.min.js", "htmx.LICENSE", "uPlot-1.6.32.iife.min.js", "uPlot.LICENSE")
    for path in ("modelyard.css", "modelyard.js", *(f"vendor/{name}" for name in vendored)):
        assert ui_client.get(f"/ui/static/{path}").status_code == 200, path


def test_a_path_outside_the_static_folder_is_not_served(ui_client: Any) -> None:
    assert ui_client.get("/ui/static/../_app.py").status_code == 404
    assert ui_client.get("/ui/static/%2e%2e/_app.py").status_code == 404


def test_chromium_runs(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/ui/static/modelyard.css")
    page.console.check()
    assert page.evaluate("document.contentType") == "text/css"
