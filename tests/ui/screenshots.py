"""Screenshots of every page of the web UI, for docs/ui.md.

    MODELYARD_TEST_CHROMIUM=/usr/bin/chromium python -m tests.ui.screenshots [FOLDER]

Builds the tests' registry (tests/ui/registry_data.py: two models, a merge, a run, drifted
traffic and the rollback it caused) in a temporary folder, serves it with `modelyard server`,
and saves a 1280x900 PNG of each page in the light scheme into FOLDER (docs/images/ui),
reduced to a 256-colour palette so each stays well under 150 KB.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import service_env
from tests.servers import running_server
from tests.ui import registry_data
from tests.ui.auth import grant_all
from tests.ui.conftest import CHROMIUM_ARGS

SIZE: Any = {"width": 1280, "height": 900}  # playwright's ViewportSize


def shots(url: str) -> dict[str, str]:
    """The file name of each page's screenshot, and the path it shows."""
    runs = httpx.get(f"{url}/api/v1/runs", timeout=30).json()
    first, second = [run["id"] for run in (runs["runs"] if isinstance(runs, dict) else runs)][:2]
    return {
        "models": "/",
        "model": "/models/cancer",
        "version": "/version?ref=mlp:4",
        "diff": "/diff?a=mlp:1&b=mlp:3",
        "card": "/version/card?ref=cancer:2",
        "runs": "/runs",
        "run": f"/runs/{first}",
        "compare": f"/runs/compare?run={first}&run={second}",
        "monitoring": "/monitoring",
        "monitoring-model": "/monitoring/cancer",
        "audit": "/audit",
    }


def second_run(home: Path) -> None:
    """Another training run, so that the compare page has two to set side by side."""
    from modelyard import Settings, Yard

    with Yard(Settings(home=home, user="ana")) as yard:
        with yard.start_run("train-cancer-wide", params={"max_depth": 4}) as run:
            for step in range(20):
                run.log_metrics({"loss": 0.8 / (step + 1), "auc": 0.82 + step / 180}, step=step)


def save(tab: Any, url: str, path: Path) -> None:
    """Open `url` and write what the window shows to `path`, as a small palette PNG."""
    from PIL import Image

    tab.goto(url)
    tab.wait_for_load_state("networkidle")
    tab.screenshot(path=str(path))
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1024} KB): {url}")


def main(folder: Path) -> None:
    """Build the registry, serve it, photograph each page into `folder`."""
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="modelyard-shots-"))
    try:
        (work / "server-home").mkdir()
        registry_data.build(work / "server-home")
        second_run(work / "server-home")
        tokens = grant_all(work / "server-home")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=service_env("MODELYARD_TEST_CHROMIUM"), args=CHROMIUM_ARGS
            )
            tab = browser.new_context(viewport=SIZE, color_scheme="light").new_page()
            with running_server(work, env={"MODELYARD_USER": "ana"}) as url:
                for name, path in shots(url).items():
                    save(tab, f"{url}{path}", folder / f"{name}.png")
            signed_out = browser.new_context(viewport=SIZE, color_scheme="light").new_page()
            env = {"MODELYARD_AUTH": "true", "MODELYARD_USER": "server"}
            with running_server(work, env=env) as url:
                save(signed_out, f"{url}/models/cancer", folder / "login.png")
                signed_out.fill("#token", tokens["rita"])
                signed_out.keyboard.press("Enter")
                signed_out.wait_for_url(f"{url}/models/cancer")
                save(signed_out, f"{url}/models/cancer", folder / "model-reader.png")
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/images/ui"))
