"""Cross-site request forgery: a form post counts only with this site's token for the
browser's own cookie, from this site; with auth on (the login form too) and with auth off
(a page on the internet must not act through a browser that reaches a loopback registry)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.asgi import in_process_client
from tests.ui.auth import auth_client, csrf_of, grant_all, sign_in

SAME_SITE = {"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"}
MOVE = {"alias": "champion", "version": "1", "reason": "csrf test"}


def _champion(client: httpx.Client, **headers: str) -> int:
    response = client.get("/api/v1/version", params={"ref": "cancer@champion"}, headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["number"])


def _form_token(client: httpx.Client) -> str:
    return csrf_of(client.get("/models/cancer").text)


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({}, "none"),
        (SAME_SITE, "none"),
        (SAME_SITE, "another browser's"),
        ({"origin": "https://evil.example"}, "right"),
        ({"origin": "null"}, "right"),
        ({"sec-fetch-site": "cross-site"}, "right"),
        ({"sec-fetch-site": "same-site"}, "right"),
    ],
)
def test_with_auth_off_a_forged_post_does_not_act(
    ui_client: httpx.Client, ui_copy: Path, headers: dict[str, str], token: str
) -> None:
    before = _champion(ui_client)
    field = {"none": None, "right": _form_token(ui_client)}.get(token)
    if token == "another browser's":
        _form_token(ui_client)  # this browser has its cookie
        from modelyard import Settings
        from modelyard.api import create_app

        with in_process_client(create_app(Settings(home=ui_copy, user="eve"))) as other:
            other.base_url = httpx.URL("http://127.0.0.1")
            field = _form_token(other)
    data = MOVE if field is None else {**MOVE, "csrf": field}
    response = ui_client.post("/ui/models/cancer/alias", data=data, headers=headers)
    assert response.status_code == 403, response.text
    assert "refused" in response.text and "<html" in response.text
    assert _champion(ui_client) == before


def test_with_auth_off_the_site_s_own_form_acts(ui_client: httpx.Client) -> None:
    assert _champion(ui_client) == 2
    data = {**MOVE, "csrf": _form_token(ui_client)}
    response = ui_client.post("/ui/models/cancer/alias", data=data, headers=SAME_SITE)
    assert response.status_code == 303, response.text
    assert _champion(ui_client) == 1


def test_a_browser_without_fetch_metadata_still_needs_the_token(ui_client: httpx.Client) -> None:
    # Old browsers send neither Origin nor Sec-Fetch-Site on a form post: the token decides.
    data = {**MOVE, "csrf": _form_token(ui_client)}
    assert ui_client.post("/ui/models/cancer/alias", data=data).status_code == 303
    assert ui_client.post("/ui/models/cancer/alias", data=MOVE).status_code == 403


@pytest.fixture
def tokens(ui_copy: Path) -> dict[str, str]:
    return grant_all(ui_copy)


@pytest.fixture
def client(ui_copy: Path, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    with auth_client(ui_copy) as client:
        yield client


def test_the_login_form_needs_its_token(client: httpx.Client, tokens: dict[str, str]) -> None:
    # Login CSRF: another site must not sign this browser in as the attacker.
    client.get("/login")
    for headers, data in (
        (SAME_SITE, {"token": tokens["ana"]}),
        ({"origin": "https://evil.example"}, {"token": tokens["ana"]}),
        ({"sec-fetch-site": "cross-site"}, {"token": tokens["ana"]}),
    ):
        if (
            "origin" in headers
            and headers["origin"] != SAME_SITE["origin"]
            or (headers.get("sec-fetch-site") == "cross-site")
        ):
            data = {**data, "csrf": csrf_of(client.get("/login").text)}
        response = client.post("/ui/login", data=data, headers=headers)
        assert response.status_code == 403, (headers, response.text)
        assert "modelyard_session" not in response.headers.get("set-cookie", "")
    assert sign_in(client, tokens["ana"]).status_code == 303


def test_with_auth_on_a_forged_post_does_not_act(
    client: httpx.Client, tokens: dict[str, str]
) -> None:
    bearer = {"authorization": f"Bearer {tokens['ana']}"}
    sign_in(client, tokens["ana"])
    before = _champion(client, **bearer)
    token = _form_token(client)
    for headers, field in (
        (SAME_SITE, None),
        (SAME_SITE, "0" * 64),
        ({"origin": "https://evil.example"}, token),
        ({"sec-fetch-site": "cross-site"}, token),
    ):
        data = MOVE if field is None else {**MOVE, "csrf": field}
        response = client.post("/ui/models/cancer/alias", data=data, headers=headers)
        assert response.status_code == 403, (headers, response.text)
    assert _champion(client, **bearer) == before
    response = client.post("/ui/models/cancer/alias", data={**MOVE, "csrf": token},
                           headers=SAME_SITE)  # fmt: skip
    assert response.status_code == 303, response.text
    assert _champion(client, **bearer) == 1
