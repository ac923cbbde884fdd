"""The lease routes of the registry server (in-process, auth on): an editor takes and releases a
lease; a reader, a caller with no token and crafted requests (bad bodies, names, sizes) get a
4xx and change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from modelyard import Settings
from modelyard.api import create_app
from modelyard.registry import Database, Principals, Registry
from modelyard.registry._tables import leases
from tests.asgi import in_process_client

URL = "http://testserver/api/v1/leases"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, dict[str, str], Database]]:
    """The app on its own SQLite file, with an editor's and a reader's token (one for the
    module: each test uses lease names of its own)."""
    home = tmp_path_factory.mktemp("leases")
    settings = Settings(home=home, user="server", auth=True, auth_cache_seconds=0)
    database = Database(settings.database_url)
    database.open()
    database.migrate()
    principals = Principals(database, actor="root")
    principals.grant("eve", "editor")
    principals.grant("rita", "reader")
    tokens = {user: principals.create_token(user=user).secret for user in ("eve", "rita")}
    with in_process_client(create_app(settings)) as client:
        yield client, {u: f"Bearer {t}" for u, t in tokens.items()}, database
    database.close()


def test_an_editor_takes_and_releases_a_lease(
    served: tuple[httpx.Client, dict[str, str], Database],
) -> None:
    client, tokens, _ = served
    editor = {"Authorization": tokens["eve"]}
    taken = client.post(f"{URL}/alerts:abc", json={"holder": "h:1", "seconds": 30}, headers=editor)
    assert taken.status_code == 200 and taken.json()["holder"] == "h:1"
    other = client.post(f"{URL}/alerts:abc", json={"holder": "h:2", "seconds": 30}, headers=editor)
    assert other.json()["holder"] == "h:1"
    gone = client.delete(f"{URL}/alerts:abc", params={"holder": "h:1"}, headers=editor)
    assert gone.status_code == 204


@pytest.mark.parametrize(
    ("path", "body", "who", "status"),
    [
        ("alerts:abc", {"holder": "h:1", "seconds": 30}, None, 401),
        ("alerts:abc", {"holder": "h:1", "seconds": 30}, "rita", 403),
        ("alerts:abc", {"holder": "h:1"}, "eve", 400),
        ("alerts:abc", {"holder": "h:1", "seconds": "soon"}, "eve", 400),
        ("alerts:abc", {"holder": "h:1", "seconds": 1e9}, "eve", 400),
        ("alerts:abc", {"holder": "h:1", "seconds": -1}, "eve", 400),
        ("alerts:abc", {"holder": "h" * 10_000, "seconds": 30}, "eve", 400),
        ("alerts:abc", {"holder": "h 1", "seconds": 30}, "eve", 400),
        ("alerts:abc", {"holder": "h:1", "seconds": 30, "extra": 1}, "eve", 400),
        ("alerts:abc", ["h:1", 30], "eve", 400),
        ("%2e%2e%2fetc%2fpasswd", {"holder": "h:1", "seconds": 30}, "eve", 400),
        ("a%20b", {"holder": "h:1", "seconds": 30}, "eve", 400),
        ("x" * 300, {"holder": "h:1", "seconds": 30}, "eve", 400),
    ],
)
def test_crafted_requests_are_refused_and_change_nothing(
    served: tuple[httpx.Client, dict[str, str], Database],
    path: str,
    body: object,
    who: str | None,
    status: int,
) -> None:
    client, tokens, database = served
    headers = {"Authorization": tokens[who]} if who else {}
    answer = client.post(f"{URL}/{path.replace('abc', 'crafted')}", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
    with database.read() as connection:
        rows = connection.execute(select(leases.c.name, leases.c.holder)).all()
    assert not [row for row in rows if row.name == "alerts:crafted" or row.holder[0] == "h"]


def test_a_reader_cannot_release_a_lease(
    served: tuple[httpx.Client, dict[str, str], Database],
) -> None:
    client, tokens, database = served
    Registry(database, actor="t").acquire_lease("alerts:kept", holder="k:1", seconds=60)
    refused = client.delete(
        f"{URL}/alerts:kept", params={"holder": "k:1"}, headers={"Authorization": tokens["rita"]}
    )
    assert refused.status_code == 403
    still = Registry(database, actor="t").acquire_lease("alerts:kept", holder="t:0", seconds=1)
    assert still.holder == "k:1"
