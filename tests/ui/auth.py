"""A registry server with auth on, in process, over a copy of the UI's registry: users with
roles and tokens, and a browser-like client that signs in through the login form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.asgi import in_process_client

GRANTS = [("ana", "admin", "*"), ("bob", "approver", "*"), ("ed", "editor", "*"),
          ("rita", "reader", "*"), ("cara", "reader", "cancer")]  # fmt: skip
"""Who may do what: `cara` reads only the `cancer` model."""

_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class AuthServer:
    """The app, where it keeps its registry, and a token for each user of `GRANTS`."""

    home: Path
    tokens: dict[str, str] = field(default_factory=dict)


def grant_all(home: Path) -> dict[str, str]:
    """Grant `GRANTS` in the registry under `home`; a token for each user (and `nobody`)."""
    from modelyard import Settings
    from modelyard.registry import Database, Principals
    from modelyard.security import load_secret

    # Keyed like the server's, so the audit chain still verifies after these grants.
    configured = Settings(home=home).secret_key
    secret = load_secret(configured=configured.get_secret_value() if configured else None,
                         home=home)  # fmt: skip
    database = Database(f"sqlite:///{home / 'registry.db'}", secret=secret)
    database.open()
    try:
        principals = Principals(database, actor="server")
        tokens = {}
        for user, role, models in GRANTS:
            principals.grant(user, role, models=models)
            tokens[user] = principals.create_token(user=user).secret
        tokens["nobody"] = principals.create_token(user="nobody").secret
        return tokens
    finally:
        database.close()


@contextmanager
def auth_client(home: Path) -> Iterator[httpx.Client]:
    """A client (no token, no cookie) of a registry server with auth on over `home`."""
    from modelyard import Settings
    from modelyard.api import create_app

    app = create_app(Settings(home=home, user="server", auth=True))
    with in_process_client(app) as client:
        client.base_url = httpx.URL("http://127.0.0.1")
        yield client


def csrf_of(html: str) -> str:
    """The form token in a page."""
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found[1]


def sign_in(client: httpx.Client, token: str, *, next_: str = "/") -> httpx.Response:
    """Fill in and post the login form as a browser would (same-origin)."""
    form = client.get("/login", params={"next": next_})
    assert form.status_code == 200, form.text
    return client.post(
        "/ui/login",
        data={"csrf": csrf_of(form.text), "token": token, "next": next_},
        headers={"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"},
    )
