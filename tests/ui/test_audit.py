"""The audit log page: events newest first, filters, paging, the chain's verification status
(and a broken chain after tampering), roles, escaping."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.ui._audit import moment
from tests.ui.auth import auth_client, grant_all, sign_in
from tests.ui.conftest import serious_violations

HOSTILE = '<script>alert("x")</script>'


def seqs(page: str) -> list[int]:
    """The sequence numbers of the events a page lists, in order."""
    return [int(seq) for seq in re.findall(r'<th scope="row" class="num">(\d+)</th>', page)]


def act_as(home: Path, user: str, action: Callable[[Any], object]) -> None:
    """Do something to the registry under `home` as `user` (so the log records them)."""
    from modelyard import Settings, Yard

    yard = Yard(Settings(home=home, user=user))
    try:
        action(yard.registry)
    finally:
        yard.close()


def test_the_log_lists_events_newest_first_with_the_chain_verified(
    ui_client: httpx.Client,
) -> None:
    page = ui_client.get("/audit")
    assert page.status_code == 200
    listed = seqs(page.text)
    assert listed == sorted(listed, reverse=True) and listed[-1] == 1 and len(listed) >= 20
    assert 'class="chain good"' in page.text and "Chain verified" in page.text
    assert 'href="/version?ref=cancer%3A1"' in page.text  # a version event links to it
    assert 'href="/models/mlp"' in page.text  # a model (and an alias) event to the model
    assert "state:</span> <code>staging</code> → <code>production</code>" in page.text


def test_filters_narrow_the_log(ui_client: httpx.Client, ui_copy: Path) -> None:
    act_as(ui_copy, "bob", lambda registry: registry.update_model("cancer", description="bob's"))
    by_target = ui_client.get("/audit", params={"target": "mlp"}).text
    assert "mlp@soup" in by_target and "cancer" not in by_target.split("<table")[1]
    one_version = ui_client.get("/audit", params={"target": "cancer:2"}).text
    assert len(seqs(one_version)) == 4  # created, then three transitions
    by_actor = ui_client.get("/audit", params={"actor": "bob"}).text
    assert len(seqs(by_actor)) == 1 and "bob&#39;s" in by_actor
    by_kind = ui_client.get("/audit", params={"action": "alias"}).text
    assert len(seqs(by_kind)) == 7 and "version.create" not in by_kind.split("<table")[1]
    exact = ui_client.get("/audit", params={"action": "version.transition", "target": "cancer"})
    assert len(seqs(exact.text)) == 6
    later = ui_client.get("/audit", params={"since": "2999-01-01"}).text
    assert seqs(later) == [] and "No events match these filters" in later
    today = ui_client.get("/audit", params={"until": "2999-01-01"}).text
    assert len(seqs(today)) == len(seqs(ui_client.get("/audit").text))


def test_older_events_are_a_page_away(ui_client: httpx.Client) -> None:
    first = ui_client.get("/audit", params={"limit": "5"}).text
    assert len(seqs(first)) == 5
    older = re.search(r'href="/audit\?([^"]*)" rel="next"', first)
    assert older, "no link to older events"
    second = ui_client.get("/audit?" + older[1].replace("&amp;", "&")).text
    assert seqs(second) == [seq - 5 for seq in seqs(first)] and "← Newest" in second


def test_bad_filters_say_why(ui_client: httpx.Client) -> None:
    for params, words in (({"since": "yesterday"}, "from must be a time"),
                          ({"limit": "0"}, "limit must be a whole number"),
                          ({"before": "-3"}, "before must be a whole number")):  # fmt: skip
        page = ui_client.get("/audit", params=params)
        assert page.status_code == 400 and words in page.text and 'id="audit-error"' in page.text


def test_a_tampered_event_shows_the_chain_broken(ui_client: httpx.Client, ui_copy: Path) -> None:
    with sqlite3.connect(ui_copy / "registry.db") as db:
        db.execute("""UPDATE audit_events SET "after" = '{"version": 1}' WHERE seq = 5""")
    page = ui_client.get("/audit")
    assert page.status_code == 200
    assert 'class="chain bad" role="alert"' in page.text
    assert "Chain broken at event 5" in page.text and "does not match its hash" in page.text
    assert 'href="/audit?before=6"' in page.text


def test_a_missing_head_row_shows_the_chain_broken(ui_client: httpx.Client, ui_copy: Path) -> None:
    with sqlite3.connect(ui_copy / "registry.db") as db:
        db.execute("DELETE FROM audit_head")
    page = ui_client.get("/audit")
    assert page.status_code == 200 and "the head row is missing" in page.text
    assert len(seqs(page.text)) > 20


def test_a_long_log_is_verified_after_the_page_shows(
    ui_client: httpx.Client, ui_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.ui import _audit

    monkeypatch.setattr(_audit, "INLINE_VERIFY", 3)
    page = ui_client.get("/audit").text
    assert 'hx-get="/audit/verify" hx-trigger="load"' in page and "Chain verified" not in page
    fragment = ui_client.get("/audit/verify", headers={"hx-request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Chain verified" in fragment.text
    without_scripts = ui_client.get("/audit/verify", follow_redirects=False)
    assert without_scripts.status_code == 303
    assert "Chain verified" in ui_client.get(without_scripts.headers["location"]).text


def test_stored_strings_are_escaped(ui_client: httpx.Client, ui_copy: Path) -> None:
    act_as(ui_copy, "ana", lambda registry: registry.update_model("mlp", description=HOSTILE))
    page = ui_client.get("/audit", params={"target": HOSTILE, "actor": HOSTILE})
    assert page.status_code == 403 or HOSTILE not in page.text
    text = ui_client.get("/audit").text
    assert HOSTILE not in text and "&lt;script&gt;" in text


def test_times_are_inclusive_at_their_precision() -> None:
    day = moment("2026-12-02", what="until", end=True)
    assert day is not None and day.isoformat() == "2026-12-03T00:00:00+00:00"
    minute = moment("2026-12-02T21:03", what="until", end=True)
    assert minute is not None and minute.isoformat() == "2026-12-02T21:04:00+00:00"
    assert moment("", what="from") is None


# roles ---------------------------------------------------------------------------------------


@pytest.fixture
def as_user(ui_copy: Path) -> Iterator[Callable[[str], httpx.Client]]:
    tokens = grant_all(ui_copy)
    with auth_client(ui_copy) as client:

        def signed_in(user: str) -> httpx.Client:
            client.cookies.clear()
            assert sign_in(client, tokens[user]).status_code == 303
            return client

        yield signed_in


def test_a_reader_of_one_model_sees_only_its_events(as_user: Any) -> None:
    cara = as_user("cara")  # reads only `cancer`
    page = cara.get("/audit")
    assert page.status_code == 200
    table = page.text.split("<table")[1]
    assert "cancer" in table and "mlp" not in table and "@grants" not in table
    assert "needs the reader role on every model" in page.text
    assert cara.get("/audit", params={"target": "mlp"}).status_code == 403
    assert cara.get("/audit", params={"target": "cancer:1"}).status_code == 200
    rita = as_user("rita")
    everything = rita.get("/audit").text
    # (grant_all writes its events without the server's audit key: the chain shows broken there)
    assert (
        re.search(r'class="chain (good|bad)"', everything) and "needs the reader" not in everything
    )
    assert as_user("nobody").get("/audit").status_code == 403
    assert as_user("nobody").get("/runs").status_code == 403


# in the browser ------------------------------------------------------------------------------


def test_the_audit_page_in_the_browser(page: Any, ui_url: str) -> None:
    page.goto(f"{ui_url}/audit")
    assert page.get_by_text("Chain verified").is_visible()
    assert serious_violations(page) == []
    page.get_by_label("Action").fill("alias")
    page.get_by_label("Action").press("Enter")
    page.wait_for_url("**action=alias**")
    actions = page.locator("table.audit tbody tr td:nth-child(4)").all_inner_texts()
    assert actions and all(action.startswith("alias.") for action in actions)
    page.console.check()
