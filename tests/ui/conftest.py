"""Fixtures for the web UI: one registry with something on every page (built once), a real
`modelyard server` over it, in-process clients over copies of it (for actions that change
it), and Playwright driving Debian's Chromium with console errors collected."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.asgi import in_process_client
from tests.conftest import service_env
from tests.servers import running_server
from tests.ui import registry_data

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="session")
def ui_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The home of the shared registry (read-only: copy it with `ui_copy` to change it)."""
    home = tmp_path_factory.mktemp("ui") / "server-home"
    home.mkdir()
    registry_data.build(home)
    return home


@pytest.fixture
def ui_copy(ui_home: Path, tmp_path: Path) -> Path:
    """A copy of the shared registry's home, this test's own to change."""
    copy = tmp_path / "server-home"
    shutil.copytree(ui_home, copy)
    return copy


@pytest.fixture
def ui_client(ui_copy: Path) -> Iterator[httpx.Client]:
    """An in-process client of a registry server over `ui_copy`, acting as `ana` (auth off)."""
    from modelyard import Settings
    from modelyard.api import create_app

    app = create_app(Settings(home=ui_copy, user="ana"))
    with in_process_client(app) as client:
        client.base_url = httpx.URL("http://127.0.0.1")
        yield client


@pytest.fixture(scope="session")
def ui_url(ui_home: Path) -> Iterator[str]:
    """A real `modelyard server` over the shared registry (auth off, on loopback)."""
    with running_server(ui_home.parent, env={"MODELYARD_USER": "ana"}) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright; one per test module, because
    Playwright's sync API keeps an asyncio loop marked running in this thread until it stops,
    and any async test run meanwhile would fail to start its own."""
    from playwright.sync_api import sync_playwright

    executable = service_env("MODELYARD_TEST_CHROMIUM")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console:
    """What a page printed to its console as errors, and the scripts that failed."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def check(self) -> None:
        assert not self.errors, f"console errors: {self.errors}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser tab (its own cookies); `page.console.errors` collects console errors
    and uncaught exceptions, which `page.console.check()` refuses."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    console = Console()
    tab.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda error: console.errors.append(str(error)))
    tab.console = console
    yield tab
    context.close()


def serious_violations(tab: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical accessibility violations on the page as shown now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(tab)
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"][:3]]}
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]  # fmt: skip
