"""Registry webhooks, embedded: subscriptions, the outbox written with each change, signed
deliveries to a real HTTP receiver, retries with backoff, and claims shared by two dispatchers
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from modelyard import verify_webhook
from modelyard.errors import ConfigurationError, GateFailed, NotFound, WebhookSignatureInvalid
from modelyard.registry import Database, Registry, RetryPolicy, Webhooks, has_due
from modelyard.registry._versions import now
from modelyard.security import SIGNATURE_TAG
from tests.webhook_receiver import Receiver, receiving

SECRET = b"s" * 32


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def database(database_url_for: str) -> Iterator[Database]:
    opened = Database(database_url_for, secret=SECRET)
    opened.open()
    yield opened
    opened.close()


def hooks_for(database: Database, receiver: Receiver, **options: object) -> Webhooks:
    return Webhooks(database, actor="root", allowed=[f"{receiver.url}/hooks"], **options)  # type: ignore[arg-type]


def test_each_event_arrives_signed(database: Database, receiver: Receiver) -> None:
    hooks = hooks_for(database, receiver)
    made = hooks.create(f"{receiver.url}/hooks/ci", models="fraud*")
    assert made.secret.startswith("whsec_") and made.webhook.events[0] == "version.created"
    registry = Registry(database, actor="ana")
    registry.create_version("fraud")
    registry.add_gate("fraud", "approval", to_state="staging")
    registry.transition("fraud:1", "validated")  # staging next needs an approval
    registry.set_alias("fraud", "production", "fraud:1")
    registry.set_tag("fraud:1", SIGNATURE_TAG, "sha256:" + "a" * 64)
    registry.create_version("other")  # not matched by the pattern
    assert hooks.deliver() == 5
    got = receiver.wait(5)
    events = [item.headers["X-Modelyard-Event"] for item in got]
    assert events == ["version.created", "version.state_changed", "approval.requested",
                      "alias.moved", "signature.added"]  # fmt: skip
    for item in got:
        assert item.path == "/hooks/ci"
        assert item.headers["Content-Type"] == "application/json"
        verify_webhook(secret=made.secret, body=item.body, headers=item.headers)
    payloads = [json.loads(item.body) for item in got]
    assert payloads[1] | {"at": None} == {
        "event": "version.state_changed", "model": "fraud", "ref": "fraud:1", "version": 1,
        "from_state": "registered", "to_state": "validated", "comment": "", "actor": "ana",
        "at": None, "audit_seq": payloads[1]["audit_seq"],
    }  # fmt: skip
    assert payloads[2]["for_state"] == "staging" and payloads[2]["approvals_needed"] == 1
    assert (payloads[3]["alias"], payloads[3]["to_version"]) == ("production", 1)
    ids = {item.headers["X-Modelyard-Delivery"] for item in got}
    history = hooks.deliveries()
    assert {d.id for d in history} == ids and {d.status for d in history} == {"delivered"}
    assert all(d.history[0].status_code == 204 for d in history)
    assert not has_due(database)


def test_a_refused_change_announces_nothing(database: Database, receiver: Receiver) -> None:
    hooks_for(database, receiver).create(f"{receiver.url}/hooks", events=["version.state_changed"])
    registry = Registry(database, actor="ana")
    registry.create_version("fraud")
    registry.add_gate("fraud", "metric", to_state="validated", metric="auc", op=">=", value=0.9)
    with pytest.raises(GateFailed):
        registry.transition("fraud:1", "validated")
    assert Webhooks(database, actor="root").deliveries() == []  # rolled back with the change


def test_failing_receiver_is_retried_with_backoff_then_failed(
    database: Database, receiver: Receiver
) -> None:
    receiver.default = 500
    policy = RetryPolicy(delays=(10, 30), jitter=0)
    hooks = hooks_for(database, receiver, policy=policy)
    hooks.create(f"{receiver.url}/hooks", events=["version.created"])
    Registry(database, actor="ana").create_version("fraud")
    start = now()
    assert hooks.deliver() == 1
    [pending] = hooks.deliveries()
    assert (pending.status, pending.attempts, pending.last_status_code) == ("pending", 1, 500)
    wait = (pending.next_attempt_at - start).total_seconds()
    assert 10 <= wait < 12
    assert hooks.deliver(at=start + timedelta(seconds=5)) == 0  # not due yet
    assert hooks.deliver(at=start + timedelta(seconds=12)) == 1
    assert hooks.deliver(at=start + timedelta(seconds=12 + 31)) == 1
    [failed] = hooks.deliveries(status="failed")
    assert failed.attempts == 3 == len(failed.history) == len(receiver.received)
    assert [a.status_code for a in failed.history] == [500, 500, 500]
    assert failed.finished_at is not None and failed.last_error == "HTTP 500"
    assert hooks.deliver(at=start + timedelta(days=1)) == 0  # never again
    again = hooks.redeliver(failed.id)
    assert (again.status, again.payload) == ("pending", failed.payload) and again.id != failed.id


def test_redirects_are_not_followed(database: Database, receiver: Receiver) -> None:
    receiver.answers, receiver.redirect_to = [302], f"{receiver.url}/elsewhere"
    hooks = hooks_for(database, receiver)
    made = hooks.create(f"{receiver.url}/hooks", events=["version.created"])
    delivery = hooks.ping(made.webhook.id)
    assert delivery.last_status_code == 302 and "redirect" in delivery.last_error
    assert [item.path for item in receiver.received] == ["/hooks"]  # never /elsewhere


def test_ping_and_delete(database: Database, receiver: Receiver) -> None:
    hooks = hooks_for(database, receiver)
    made = hooks.create(f"{receiver.url}/hooks")
    ping = hooks.ping(made.webhook.id)
    assert (ping.event, ping.status) == ("ping", "delivered")
    verify_webhook(secret=made.secret, body=receiver.received[0].body,
                   headers=receiver.received[0].headers)  # fmt: skip
    hooks.delete(made.webhook.id)
    assert hooks.subscriptions() == [] and hooks.deliveries() == []
    with pytest.raises(NotFound):
        hooks.ping(made.webhook.id)


def test_two_dispatchers_never_deliver_a_row_twice(database: Database, receiver: Receiver) -> None:
    hooks = hooks_for(database, receiver)
    hooks.create(f"{receiver.url}/hooks", events=["version.created"])
    registry = Registry(database, actor="ana")
    for _ in range(30):
        registry.create_version("fraud")
    counts: list[int] = []
    replica = Database(database.url, secret=SECRET)  # as a second server would: its own pool
    replica.open()

    def drain(dispatcher: Webhooks) -> None:
        counts.append(sum(dispatcher.deliver(limit=3) for _ in range(20)))

    threads = [threading.Thread(target=drain, args=(each,))
               for each in (hooks, hooks_for(replica, receiver))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replica.close()
    ids = [item.headers["X-Modelyard-Delivery"] for item in receiver.wait(30)]
    assert sum(counts) == 30 and len(ids) == len(set(ids)) == 30


# the checks ------------------------------------------------------------------------------------


def test_the_allow_list_guards_creation(database: Database, receiver: Receiver) -> None:
    with pytest.raises(ConfigurationError, match="registry_webhooks"):
        Webhooks(database, actor="root").create(f"{receiver.url}/hooks")
    hooks = hooks_for(database, receiver)
    host = receiver.url.removeprefix("http://")
    for bad in (
        "http://example.com/hooks",  # another host
        f"{receiver.url}/hooks-evil",  # not a whole segment
        f"{receiver.url}/hooks/../admin",  # climbs out
        f"{receiver.url}/hooks/%2e%2e/admin",
        f"http://{host}@evil.example/hooks",  # userinfo: the real host is evil.example
        f"http://user:pw@{host}/hooks",
        f"{receiver.url}/hooks%2fx",
        f"ftp://{host}/hooks",
    ):
        with pytest.raises(ConfigurationError, match="not allowed"):
            hooks.create(bad)
    made = hooks.create(f"HTTP://{host}/hooks/./a")
    assert made.webhook.url == f"{receiver.url}/hooks/a"  # normalised, and posted to as such
    with pytest.raises(ConfigurationError, match="unknown webhook event"):
        hooks.create(f"{receiver.url}/hooks", events=["model.deleted"])
    with pytest.raises(ConfigurationError, match="pattern"):
        hooks.create(f"{receiver.url}/hooks", models="a b")


def test_secrets_need_the_server_secret(database_url_for: str, receiver: Receiver) -> None:
    keyless = Database(database_url_for)
    keyless.open()
    try:
        with pytest.raises(ConfigurationError, match="MODELYARD_SECRET_KEY"):
            hooks_for(keyless, receiver).create(f"{receiver.url}/hooks")
    finally:
        keyless.close()


def test_verify_webhook_refuses_altered_and_replayed_deliveries() -> None:
    from modelyard.security import signed_headers

    body = b'{"event":"alias.moved"}'
    headers = signed_headers(secret="whsec_x", body=body, timestamp=1_000_000)
    assert verify_webhook(secret="whsec_x", body=body, headers=headers, now=1_000_100) == 1_000_000
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        verify_webhook(secret="whsec_x", body=body + b" ", headers=headers, now=1_000_000)
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        verify_webhook(secret="whsec_y", body=body, headers=headers, now=1_000_000)
    with pytest.raises(WebhookSignatureInvalid, match="replayed"):
        verify_webhook(secret="whsec_x", body=body, headers=headers, now=1_000_301)
    moved = {**headers, "X-Modelyard-Timestamp": "1000300"}  # a fresh stamp on an old body
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        verify_webhook(secret="whsec_x", body=body, headers=moved, now=1_000_300)
    with pytest.raises(WebhookSignatureInvalid, match="missing"):
        verify_webhook(secret="whsec_x", body=body, headers={}, now=1_000_000)


def test_a_receiver_that_never_answers_times_out(database: Database) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        policy = RetryPolicy(delays=(10,), jitter=0, timeout=0.5)
        hooks = Webhooks(database, actor="root", allowed=[url], policy=policy)
        made = hooks.create(f"{url}/hooks")
        delivery = hooks.ping(made.webhook.id)
    assert delivery.status == "pending" and "Timeout" in delivery.last_error
    assert delivery.last_status_code is None and delivery.history[0].duration_ms >= 400


def test_rollback_and_delete_are_alias_moves(database: Database, receiver: Receiver) -> None:
    hooks = hooks_for(database, receiver)
    hooks.create(f"{receiver.url}/hooks", events=["alias.moved"])
    registry = Registry(database, actor="ana")
    registry.create_version("fraud")
    registry.create_version("fraud")
    registry.set_alias("fraud", "production", "fraud:1")
    registry.set_alias("fraud", "production", "fraud:2")
    registry.rollback("fraud", "production")
    registry.delete_alias("fraud", "production")
    hooks.deliver()
    moves = [json.loads(item.body) for item in receiver.wait(4)]
    assert [(m["kind"], m["from_version"], m["to_version"]) for m in moves] == [
        ("set", None, 1), ("set", 1, 2), ("rollback", 2, 1), ("delete", 1, None)]  # fmt: skip
