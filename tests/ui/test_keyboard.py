"""The UI with the keyboard alone: the skip link comes first and moves focus to the content,
the main navigation is reachable and follows with Enter, a search is typed and submitted, and
the focused control is visibly outlined."""

from __future__ import annotations

from typing import Any

MAX_TABS = 40


def focused(page: Any) -> dict[str, str]:
    """What has focus: its tag, id, text and href."""
    return dict(
        page.evaluate(
            """() => { const e = document.activeElement;
                return {tag: e.tagName.toLowerCase(), id: e.id || "",
                        text: (e.textContent || "").trim(), href: e.getAttribute("href") || "",
                        name: e.getAttribute("name") || ""}; }"""
        )
    )


def tab_to(page: Any, **wanted: str) -> dict[str, str]:
    """Press Tab until the focused element matches `wanted` (fails after `MAX_TABS`)."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        now = focused(page)
        if all(now.get(key) == value for key, value in wanted.items()):
            return now
    raise AssertionError(f"Tab never reached {wanted}")


def test_the_skip_link_comes_first_and_moves_focus_to_the_content(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/models/cancer")
    page.keyboard.press("Tab")
    first = focused(page)
    assert first["href"] == "#main" and first["text"] == "Skip to content"
    assert page.evaluate("getComputedStyle(document.activeElement).left") != "-999px"
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "main"
    page.keyboard.press("Tab")  # the next stop is inside the content, past the navigation
    assert page.evaluate("document.querySelector('main').contains(document.activeElement)")
    page.console.check()


def test_the_navigation_is_reachable_and_follows_with_enter(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/")
    for label, path in (("Runs", "/runs"), ("Audit log", "/audit"), ("Models", "/")):
        tab_to(page, tag="a", href=path, text=label)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == f"{ui_url}{path}"
        current = page.locator("nav[aria-label=Main] a[aria-current=page]")
        assert current.inner_text() == label
    page.console.check()


def test_a_search_is_typed_and_submitted_with_the_keyboard(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/")
    tab_to(page, tag="input", name="q")
    page.keyboard.type("mlp")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "q=mlp" in page.url
    listed = page.locator("main table a[href^='/models/']").all_inner_texts()
    assert listed and all("mlp" in text for text in listed)
    page.console.check()


def test_the_focused_control_is_outlined(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/")
    tab_to(page, tag="a", href="/runs")
    style = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert style[0] != "none" and style[1] != "0px", style
    tab_to(page, tag="input", name="q")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
