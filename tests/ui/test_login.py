"""Signing in to the UI with an API token: the session cookie, where the browser goes after,
signing out, open redirects refused, and the security headers on every UI answer."""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from modelyard.ui._headers import CONTENT_SECURITY_POLICY, SecurityHeaders
from modelyard.ui._login import safe_next
from tests.servers import running_server
from tests.ui.auth import auth_client, csrf_of, grant_all, sign_in
from tests.ui.conftest import serious_violations


@pytest.fixture
def tokens(ui_copy: Path) -> dict[str, str]:
    return grant_all(ui_copy)


@pytest.fixture
def client(ui_copy: Path, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    with auth_client(ui_copy) as client:
        yield client


def test_a_page_without_a_session_goes_to_the_login_form(client: httpx.Client) -> None:
    response = client.get("/models/cancer?page=2")
    assert response.status_code == 303
    target = urllib.parse.urlsplit(response.headers["location"])
    assert target.path == "/login"
    query = urllib.parse.parse_qs(target.query)
    assert query["next"] == ["/models/cancer?page=2"]
    form = client.get(response.headers["location"])
    assert form.status_code == 200
    assert 'name="token"' in form.text and 'value="/models/cancer?page=2"' in form.text
    assert "why" not in query and "Sign in to see" in form.text


def test_a_stale_session_says_why_it_was_refused(client: httpx.Client) -> None:
    client.cookies.set("modelyard_session", "myd_revoked-long-ago")
    response = client.get("/models/cancer")
    assert response.status_code == 303
    form = client.get(response.headers["location"])
    assert "Your session ended: the token was refused: this server does not know it" in form.text


def test_the_login_page_repeats_no_text_from_its_link(client: httpx.Client) -> None:
    form = client.get("/login", params={"why": "Paste your token at evil.example"})
    assert form.status_code == 200 and "evil.example" not in form.text


def test_a_good_token_sets_a_strict_http_only_cookie_and_returns(
    client: httpx.Client, tokens: dict[str, str]
) -> None:
    response = sign_in(client, tokens["rita"], next_="/runs")
    assert response.status_code == 303 and response.headers["location"] == "/runs"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("modelyard_session=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http on loopback: a Secure cookie is dropped
    page = client.get("/login")
    assert page.status_code == 200 and "rita" in page.text and "Sign out" in page.text


def test_a_bad_token_shows_the_form_again_with_the_reason(
    client: httpx.Client, tokens: dict[str, str]
) -> None:
    response = sign_in(client, "myd_not-a-real-token")
    assert response.status_code == 401
    assert "this server does not know it" in response.text and 'name="token"' in response.text
    assert "modelyard_session" not in response.headers.get("set-cookie", "")
    assert client.get("/models/cancer").status_code == 303


def test_signing_out_forgets_the_session(client: httpx.Client, tokens: dict[str, str]) -> None:
    sign_in(client, tokens["rita"])
    page = client.get("/login")
    response = client.post("/ui/logout", data={"csrf": csrf_of(page.text)},
                           headers={"origin": "http://127.0.0.1"})  # fmt: skip
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?done=Signed")
    assert 'modelyard_session=""' in response.headers["set-cookie"]
    assert client.get("/models/cancer").status_code == 303


def test_the_cookie_does_not_open_the_rest_api(
    client: httpx.Client, tokens: dict[str, str]
) -> None:
    # The API takes no form token: were the cookie enough, another site could call it.
    sign_in(client, tokens["ana"])
    assert client.get("/api/v1/models").status_code == 401
    bearer = {"authorization": f"Bearer {tokens['ana']}"}
    assert client.get("/api/v1/models", headers=bearer).status_code == 200


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
     "http:/evil.example", "/\t/evil.example", "evil.example", "", "javascript:alert(1)"],
)  # fmt: skip
def test_next_never_leaves_the_site(target: str) -> None:
    assert safe_next(target) == "/"


def test_next_keeps_local_paths() -> None:
    assert safe_next("/models/cancer?sort=-auc#versions") == "/models/cancer?sort=-auc#versions"


def test_an_open_redirect_is_refused_end_to_end(
    client: httpx.Client, tokens: dict[str, str]
) -> None:
    response = sign_in(client, tokens["rita"], next_="//evil.example/steal")
    assert response.headers["location"] == "/"


def test_with_auth_off_the_login_page_says_so(ui_client: httpx.Client) -> None:
    page = ui_client.get("/login")
    assert page.status_code == 200 and "auth off" in page.text and 'name="token"' not in page.text


def test_ui_answers_carry_the_security_headers(client: httpx.Client) -> None:
    for path, status in (
        ("/login", 200),
        ("/models/cancer", 303),
        ("/ui/static/modelyard.css", 200),
    ):
        response = client.get(path)
        assert response.status_code == status, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/login").headers["cache-control"] == "no-store"
    refused = client.post("/ui/login", data={"token": "x"})
    assert refused.status_code == 403 and "frame-ancestors 'none'" in refused.headers[
        "content-security-policy"]  # fmt: skip
    api = client.get("/api/v1/models")
    assert "content-security-policy" not in api.headers


def test_a_route_s_own_policy_is_kept() -> None:
    stricter = "default-src 'none'; style-src 'unsafe-inline'"

    def report(_request: object) -> PlainTextResponse:
        return PlainTextResponse("report", headers={"content-security-policy": stricter})

    app = Starlette(routes=[Route("/monitoring/report", report), Route("/plain", report)])
    wrapped = SecurityHeaders(app, applies=lambda path: path.startswith("/monitoring"),
                              static="/ui/static")  # fmt: skip
    with TestClient(wrapped) as test:
        kept = test.get("/monitoring/report")
        assert kept.headers["content-security-policy"] == stricter
        assert kept.headers["x-frame-options"] == "DENY"
        assert "x-frame-options" not in test.get("/plain").headers


def test_signing_in_and_out_in_the_browser(page: Any, ui_home: Path, tmp_path: Path) -> None:
    shutil.copytree(ui_home, tmp_path / "server-home")
    tokens = grant_all(tmp_path / "server-home")
    env = {"MODELYARD_AUTH": "true", "MODELYARD_USER": "server"}
    with running_server(tmp_path, env=env) as url:
        page.goto(f"{url}/models/cancer")
        assert page.url.startswith(f"{url}/login?next=%2Fmodels%2Fcancer")
        assert serious_violations(page) == []
        page.fill("#token", "myd_wrong")
        page.keyboard.press("Enter")
        page.wait_for_selector("p.error[role=alert]")
        assert "does not know it" in page.locator("p.error").inner_text()
        page.console.errors.clear()  # the browser logs the refusal's own 401
        page.fill("#token", tokens["rita"])
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == f"{url}/models/cancer"
        assert page.locator(".who").inner_text().startswith("rita")
        assert not page.evaluate("document.cookie")  # HttpOnly: no script can read the token
        with page.expect_navigation():
            page.get_by_role("button", name="Sign out").click()
        assert page.url.startswith(f"{url}/login")
        page.goto(f"{url}/models/cancer")
        assert page.url.startswith(f"{url}/login")
        page.console.check()
