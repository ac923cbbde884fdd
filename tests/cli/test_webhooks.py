"""`modelyard webhook …` on an embedded registry, delivering to a real loopback receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard import Settings, Yard, verify_webhook
from modelyard.cli import app
from tests.webhook_receiver import Receiver, receiving


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for name in ("MODELYARD_STORE_URL", "MODELYARD_DATABASE_URL", "MODELYARD_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELYARD_USER", "ana")
    with receiving() as running:
        monkeypatch.setenv("MODELYARD_REGISTRY_WEBHOOKS", json.dumps([f"{running.url}/hooks"]))
        yield running


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_add_deliver_history_test_and_remove(tmp_path: Path, receiver: Receiver) -> None:
    code, out, err = run("webhook", "add", f"{receiver.url}/hooks", "--event", "version.created")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("whsec_") and "shown only now" in err
    code, out, _ = run("webhook", "list", "--json")
    [hook] = json.loads(out)
    assert "secret" not in json.dumps(hook) and hook["events"] == ["version.created"]
    with Yard(Settings(home=tmp_path / "home", user="ana")) as yard:
        yard.registry.create_version("fraud")
    code, out, err = run("webhook", "deliver")
    assert (code, out.strip()) == (0, "attempted 1 deliveries"), err
    [got] = receiver.wait(1)
    verify_webhook(secret=secret, body=got.body, headers=got.headers)
    code, out, _ = run("webhook", "deliveries", "--json", "--status", "delivered")
    [delivery] = json.loads(out)
    assert delivery["event"] == "version.created" and delivery["history"][0]["status_code"] == 204
    receiver.answers = [500]
    code, out, _ = run("webhook", "test", hook["id"])
    assert code == 1 and "HTTP 500" in out  # a failed ping fails the command
    assert run("webhook", "redeliver", delivery["id"])[0] == 0
    assert run("webhook", "rm", hook["id"])[0] == 0
    assert json.loads(run("webhook", "list", "--json")[1]) == []


def test_refusals_are_one_line(receiver: Receiver) -> None:
    code, _, err = run("webhook", "add", "http://example.com/hooks")
    assert code == 1 and "not allowed" in err and "registry_webhooks" in err
    code, _, err = run("webhook", "add", f"{receiver.url}/hooks", "--event", "nope")
    assert code == 1 and "unknown webhook event" in err
