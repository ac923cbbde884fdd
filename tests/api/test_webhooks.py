"""Registry webhooks through a real `modelyard server` (auth on): an admin subscribes over
HTTP, the server's background dispatcher POSTs each change signed, the history is visible over
the API, and a non-admin is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from modelyard import Settings, Yard, verify_webhook
from modelyard._remote_admin import HttpWebhooks
from modelyard.errors import ConfigurationError, PermissionDenied
from modelyard.registry import Database, Principals
from tests.servers import running_server
from tests.webhook_receiver import Receiver, receiving

SECRET = "webhook-test-server-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def served(tmp_path: Path, receiver: Receiver) -> Iterator[tuple[str, dict[str, SecretStr]]]:
    """A server on its own SQLite file, with an admin token and a reader token."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    database = Database(url, secret=SECRET.encode())
    database.open()
    database.migrate()
    principals = Principals(database, actor="root")
    principals.grant("root", "admin")
    principals.grant("rita", "reader")
    tokens = {
        user: SecretStr(principals.create_token(user=user).secret) for user in ("root", "rita")
    }
    database.close()
    env = {"MODELYARD_AUTH": "true", "MODELYARD_AUTH_CACHE_SECONDS": "0",
           "MODELYARD_SECRET_KEY": SECRET,
           "MODELYARD_REGISTRY_WEBHOOKS": json.dumps([f"{receiver.url}/hooks"])}  # fmt: skip
    with running_server(tmp_path, url, env=env) as server:
        yield server, tokens


def client(tmp_path: Path, served: tuple[str, dict[str, SecretStr]], user: str) -> Yard:
    server, tokens = served
    return Yard(Settings(home=tmp_path / user, user=user, token=tokens[user]), url=server)


def test_changes_reach_the_receiver_signed(
    tmp_path: Path, served: tuple[str, dict[str, SecretStr]], receiver: Receiver
) -> None:
    yard = client(tmp_path, served, "root")
    hooks = HttpWebhooks(yard.registry)  # type: ignore[arg-type]
    made = hooks.create(f"{receiver.url}/hooks/deploy", events=["version.created", "alias.moved"])
    assert [w.id for w in hooks.subscriptions()] == [made.webhook.id]
    yard.registry.create_version("fraud")
    yard.registry.set_alias("fraud", "production", "fraud:1")
    got = receiver.wait(2)  # sent by the server's background dispatcher
    for item in got:
        verify_webhook(secret=made.secret, body=item.body, headers=item.headers)
    moved = json.loads(got[1].body)
    assert (moved["event"], moved["alias"], moved["to_version"], moved["actor"]) == (
        "alias.moved", "production", 1, "root")  # fmt: skip
    history = hooks.deliveries(webhook_id=made.webhook.id, status="delivered")
    assert len(history) == 2 and history[0].history[0].status_code == 204
    ping = hooks.ping(made.webhook.id)
    assert ping.status == "delivered" and receiver.wait(3)[2].headers["X-Modelyard-Event"] == "ping"
    again = hooks.redeliver(history[0].id)
    assert again.payload == history[0].payload
    receiver.wait(4)
    hooks.delete(made.webhook.id)
    assert hooks.subscriptions() == []
    yard.close()


def test_only_admins_manage_webhooks(
    tmp_path: Path, served: tuple[str, dict[str, SecretStr]], receiver: Receiver
) -> None:
    reader = client(tmp_path, served, "rita")
    hooks = HttpWebhooks(reader.registry)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied) as refused:
        hooks.create(f"{receiver.url}/hooks")
    assert refused.value.status_code == 403
    with pytest.raises(PermissionDenied):
        hooks.deliveries()
    reader.close()
    admin = HttpWebhooks(client(tmp_path, served, "root").registry)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not allowed"):
        admin.create("http://169.254.169.254/hooks")  # the allow-list holds over HTTP too
    with pytest.raises(ConfigurationError, match="not allowed"):
        admin.create(f"http://x@{receiver.url.removeprefix('http://')}@evil.example/hooks")
    admin.registry.close()


def test_the_http_client_has_the_embedded_signatures() -> None:
    import inspect

    from modelyard.registry import Webhooks

    for member in ("create", "subscriptions", "delete", "deliveries", "redeliver", "ping"):
        mine, embedded = getattr(HttpWebhooks, member), getattr(Webhooks, member)
        assert inspect.signature(mine) == inspect.signature(embedded), member
