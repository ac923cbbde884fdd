"""Roles, grants, token secrets and the exposure check, without a server."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from modelyard.cli._server import check_exposure, is_loopback
from modelyard.errors import ConfigurationError, NotFound
from modelyard.registry import Database, Principals, Registry
from modelyard.security import (
    Policy,
    Principal,
    Role,
    Rule,
    hash_secret,
    is_api_token,
    new_secret,
    parse_duration,
)
from tests.servers import free_port


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.includes(Role.APPROVER) and Role.APPROVER.includes(Role.EDITOR)
    assert Role.EDITOR.includes(Role.READER) and not Role.READER.includes(Role.EDITOR)
    assert not Role.APPROVER.includes(Role.ADMIN)


def test_grants_per_pattern_and_group() -> None:
    policy = Policy.of([
        Rule("ana", Role.EDITOR, models="fraud-*"),
        Rule("ml", Role.APPROVER, models="churn", group=True),
        Rule("rita", Role.READER),
    ])  # fmt: skip
    ana, rita = Principal("ana"), Principal("rita")
    member = Principal("zoe", groups=frozenset({"ml"}))
    assert policy.allows(ana, Role.EDITOR, "fraud-eu") and policy.allows(
        ana, Role.READER, "fraud-x"
    )
    assert not policy.allows(ana, Role.EDITOR, "churn")
    assert not policy.allows(ana, Role.APPROVER, "fraud-eu")
    assert not policy.allows(ana, Role.READER)  # no grant on every model
    assert policy.allows_somewhere(ana, Role.EDITOR) and not policy.allows_somewhere(
        ana, Role.ADMIN
    )
    assert policy.allows(member, Role.APPROVER, "churn") and not policy.allows(
        member, Role.READER, "x"
    )
    assert not policy.allows(Principal("ml"), Role.READER, "churn")  # a group is not a user
    assert policy.allows(rita, Role.READER) and policy.allows(rita, Role.READER, "any")
    assert not policy.allows(rita, Role.EDITOR, "any")
    assert not policy.allows(Principal("FRAUD"), Role.READER, "x")
    assert Policy().allows(Principal("server", via="open"), Role.ADMIN, "x")


def test_secrets_are_random_and_only_their_hash_is_kept(tmp_path: Path) -> None:
    first, second = new_secret(), new_secret()
    assert first != second and is_api_token(first) and len(first) >= 40
    database = Database(f"sqlite:///{tmp_path / 'r.db'}")
    database.open()
    database.migrate()
    principals = Principals(database, actor="root")
    issued = principals.create_token(user="ana", expires_in=timedelta(days=1), description="ci")
    with database.read() as connection:
        stored = connection.exec_driver_sql("SELECT secret_hash FROM api_tokens").scalar_one()
    assert stored == hash_secret(issued.secret) and issued.secret not in stored
    assert principals.find_token(issued.secret) == issued.token
    assert principals.find_token(issued.secret + "x") is None
    assert "secret" not in issued.token.model_dump()
    principals.revoke_token(issued.token.id)
    assert principals.find_token(issued.secret).revoked_at is not None  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        principals.revoke_token("nope")
    principals.grant("ana", "editor", models="fraud-*")
    assert principals.grant("ana", "editor", models="fraud-*").subject == "ana"  # idempotent
    with pytest.raises(ConfigurationError, match="unknown role"):
        principals.grant("ana", "owner")
    with pytest.raises(ConfigurationError, match="invalid model pattern"):
        principals.grant("ana", "reader", models="a b")
    principals.revoke_grant("ana", "editor", models="fraud-*")
    with pytest.raises(NotFound):
        principals.revoke_grant("ana", "editor", models="fraud-*")
    actions = [e.action for e in Registry(database, actor="x").audit_log()]
    assert actions == ["token.create", "token.revoke", "grant.create", "grant.revoke"]
    database.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2)),
     ("90s", timedelta(seconds=90)), ("never", None)],
)  # fmt: skip
def test_durations(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "30", "d", "-1d", "1y", "9999999d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid duration"):
        parse_duration(text)


def test_loopback_addresses() -> None:
    for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]:
        assert is_loopback(host), host
    for host in ["0.0.0.0", "::", "10.0.0.1", "example.com", "192.168.1.2"]:
        assert not is_loopback(host), host
    check_exposure("0.0.0.0", auth=True, insecure=False)
    check_exposure("0.0.0.0", auth=False, insecure=True)
    with pytest.raises(ConfigurationError, match="--auth"):
        check_exposure("0.0.0.0", auth=False, insecure=False)


def test_a_public_bind_without_auth_refuses_to_start(tmp_path: Path) -> None:
    # Refused before anything binds: no socket is ever opened on 0.0.0.0.
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", "server", "--host", "0.0.0.0", "--port",
         str(free_port())],
        env={"MODELYARD_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "refusing to serve the registry on 0.0.0.0 without auth" in result.stderr
    assert "--insecure" in result.stderr


def test_a_public_inference_server_without_auth_refuses_to_start(tmp_path: Path) -> None:
    # Its feedback route drives monitoring and automatic rollback: not for anyone who reaches it.
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", "serve", "fraud@production", "--host", "0.0.0.0",
         "--port", str(free_port())],
        env={"MODELYARD_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "refusing to serve models on 0.0.0.0 without auth" in result.stderr
    assert "feedback" in result.stderr and "--insecure" in result.stderr
