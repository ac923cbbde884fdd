"""Headless Chromium timing for `bench/ui.py`: how long a page takes from navigation start until
its main content is visible, ours and MLflow's in turns."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

ServerTimer = Callable[[list[str], int], tuple[float, list[float], int]]


@dataclass(frozen=True, slots=True)
class Target:
    """One page, ours and MLflow's: URLs, and the selector that shows its content is there."""

    label: str
    ours_url: str
    ours_ready: str
    mlflow_url: str | None
    mlflow_ready: str
    mlflow_api: list[str]
    """The calls MLflow's page makes for its data, timed as its server-side figure."""


READY_SCRIPT = """
(() => {
  const [selector, text] = %s;
  window.__modelyardReady = null;
  const shown = (element) => element.getClientRects().length > 0
    && (text === null || element.textContent.includes(text));
  const check = () => {
    if (Array.from(document.querySelectorAll(selector)).some(shown)) {
      window.__modelyardReady = performance.now();
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
})();
"""
"""Runs in the page before its own scripts: notes, frame by frame, the first time `ready` is
laid out, in the page's own clock. Reading `performance.now()` from the harness after
Playwright's own waits would add its round trips (about 200 ms here) to every page, ours and
MLflow's alike, which flatters neither but squeezes the ratio of a fast page."""

READ = """() => {
  const load = performance.getEntriesByType("navigation")[0].loadEventStart;
  return Math.max(load, window.__modelyardReady);
}"""


def visit(context: Any, url: str, ready: str, timeout: float) -> float | None:
    """Open `url` in a new tab of `context`; ms from navigation start until `ready` is laid out
    and `load` has fired (whichever comes later), or None if not within `timeout` seconds."""
    import json

    from playwright.sync_api import Error as PlaywrightError

    page = context.new_page()
    try:
        page.add_init_script(READY_SCRIPT % json.dumps(_css_and_text(ready)))
        page.goto(url, wait_until="load", timeout=timeout * 1000)
        page.wait_for_function("window.__modelyardReady !== null", timeout=timeout * 1000)
        # both in the page's clock: milliseconds since the navigation started
        return float(page.evaluate(READ))
    except PlaywrightError:
        return None
    finally:
        page.close()


def _css_and_text(ready: str) -> tuple[str, str | None]:
    """Playwright's `a:has-text("x")` as plain CSS (`a`) and the text it must contain."""
    import re

    found = re.search(r':has-text\("([^"]*)"\)', ready)
    if found is None:
        return ready, None
    return ready[: found.start()] + ready[found.end() :], found[1]


def sample(browser: Any, url: str, ready: str, timeout: float) -> tuple[float | None, float | None]:
    """A cold visit in a fresh context (empty cache, no connections), then a warm second visit."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        return visit(context, url, ready, timeout), visit(context, url, ready, timeout)
    finally:
        context.close()


def measure_pages(
    pages: list[Target], *, repeat: int, timeout: float, server_ms: ServerTimer
) -> tuple[dict[str, dict[str, Any]], str]:
    """For each page: `repeat` cold and warm samples of each side (after one discarded round),
    taking turns, the order flipping each round; and the server-side time. Returns the results by
    label and Chromium's version."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("MODELYARD_TEST_CHROMIUM") or "/usr/bin/chromium"
    results: dict[str, dict[str, Any]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            for page in pages:
                results[page.label] = _measure(browser, page, repeat, timeout, server_ms)
            version = str(browser.version)
        finally:
            browser.close()
    return results, version


def _measure(
    browser: Any, page: Target, repeat: int, timeout: float, server_ms: ServerTimer
) -> dict[str, Any]:
    ours_server, _, status = server_ms([page.ours_url], repeat)
    ours_ready, note = page.ours_ready, ""
    if status != 200:  # the page is not built (yet): time whatever answers
        ours_ready, note = "body", f"ours answered {status}, timed to <body>"
    sides = {"ours": (page.ours_url, ours_ready)}
    base_server = None
    if page.mlflow_url:
        sides["baseline"] = (page.mlflow_url, page.mlflow_ready)
        base_server = server_ms(page.mlflow_api, repeat)[0]
    times: dict[str, dict[str, list[float | None]]] = {
        side: {"cold": [], "warm": []} for side in ("ours", "baseline")
    }
    order = list(sides)
    for round_ in range(repeat + 1):
        for side in order if round_ % 2 else reversed(order):
            cold, warm = sample(browser, *sides[side], timeout)
            if round_:  # round 0 warms the servers up and is dropped
                times[side]["cold"].append(cold)
                times[side]["warm"].append(warm)
    missing = [side for side, by in times.items() if None in by["cold"] + by["warm"]]
    if missing:
        note = "; ".join(filter(None, [note, f"not ready within {timeout:.0f} s: {missing}"]))
    return {**times, "server_ms": ours_server, "baseline_server_ms": base_server, "note": note}
