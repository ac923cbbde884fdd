"""Roles in the browser, with auth on: a reader sees no action and is refused one, an editor
moves an ordinary alias but not a protected one, and lists show only what the viewer may read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.ui.auth import auth_client, csrf_of, grant_all, sign_in

SAME_SITE = {"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"}
ACTIONS = 'action="/ui/models/cancer/'
SignIn = Callable[[str], httpx.Client]


@pytest.fixture
def tokens(ui_copy: Path) -> dict[str, str]:
    return grant_all(ui_copy)


@pytest.fixture
def as_user(ui_copy: Path, tokens: dict[str, str]) -> Iterator[SignIn]:
    """`as_user("rita")`: a client signed in as that user."""
    with auth_client(ui_copy) as client:

        def signed_in(user: str) -> httpx.Client:
            client.cookies.clear()
            assert sign_in(client, tokens[user]).status_code == 303
            return client

        yield signed_in


def _move(client: httpx.Client, alias: str, version: str) -> httpx.Response:
    token = csrf_of(client.get("/models/cancer").text)
    data = {"alias": alias, "version": version, "reason": "roles test", "csrf": token}
    return client.post("/ui/models/cancer/alias", data=data, headers=SAME_SITE)


def _target(client: httpx.Client, alias: str, tokens: dict[str, str]) -> int:
    response = client.get("/api/v1/version", params={"ref": f"cancer@{alias}"},
                          headers={"authorization": f"Bearer {tokens['ana']}"})  # fmt: skip
    return int(response.json()["number"])


def test_a_reader_sees_no_action_and_is_refused_one(
    as_user: SignIn, tokens: dict[str, str]
) -> None:
    admin = as_user("ana")
    assert ACTIONS in admin.get("/models/cancer").text
    rita = as_user("rita")
    page = rita.get("/models/cancer")
    assert page.status_code == 200 and ACTIONS not in page.text
    before = _target(rita, "champion", tokens)
    refused = _move(rita, "champion", "1")
    assert refused.status_code == 403 and "<html" in refused.text
    assert "reader" in refused.text or "editor" in refused.text
    assert _target(rita, "champion", tokens) == before


def test_an_editor_moves_an_alias_but_not_a_protected_one(
    as_user: SignIn, tokens: dict[str, str]
) -> None:
    ed = as_user("ed")
    assert _move(ed, "champion", "1").status_code == 303
    assert _target(ed, "champion", tokens) == 1
    production = _target(ed, "production", tokens)
    refused = _move(ed, "production", "1")
    assert refused.status_code == 403 and "approver" in refused.text
    assert _target(ed, "production", tokens) == production
    bob = as_user("bob")  # an approver may
    assert _move(bob, "production", "1").status_code == 303


def test_lists_show_only_models_the_viewer_may_read(as_user: SignIn) -> None:
    cara = as_user("cara")
    listing = cara.get("/")
    assert listing.status_code == 200
    assert 'href="/models/cancer"' in listing.text and 'href="/models/mlp"' not in listing.text
    assert cara.get("/models/mlp").status_code == 403
    everything = as_user("rita").get("/")
    assert 'href="/models/mlp"' in everything.text
