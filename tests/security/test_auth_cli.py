"""`modelyard token …` and `modelyard role …`: locally (the operator bootstraps the first
admin, no token needed) and through a server (the admin role needed, errors said plainly)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from tests.servers import running_server


def cli(*args: str, **env: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env or None)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MODELYARD_STORE_URL", "MODELYARD_DATABASE_URL", "MODELYARD_URL",
                 "MODELYARD_TOKEN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "server-home"))
    monkeypatch.setenv("MODELYARD_USER", "root")
    return tmp_path


def test_local_tokens_and_grants() -> None:
    code, secret, err = cli("token", "create", "--user", "ana", "--expires", "30d",
                            "--description", "laptop")  # fmt: skip
    assert code == 0 and secret.strip().startswith("myd_") and "shown only now" in err
    code, out, _ = cli("token", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["user"] == "ana" and listed["description"] == "laptop"
    assert secret.strip() not in out and "hash" not in out
    code, out, _ = cli("role", "grant", "ana", "editor", "--models", "fraud-*")
    assert code == 0 and "user ana is editor on fraud-*" in out
    code, out, _ = cli("role", "grant", "ml", "reader", "--group")
    code, out, _ = cli("role", "list")
    assert "fraud-*" in out and "group" in out
    assert cli("role", "revoke", "ana", "editor", "--models", "fraud-*")[0] == 0
    code, _, err = cli("role", "revoke", "ana", "editor", "--models", "fraud-*")
    assert code == 1 and "has no editor grant" in err
    assert cli("token", "revoke", listed["id"])[0] == 0
    code, _, err = cli("token", "create", "--user", "ana", "--expires", "soon")
    assert code == 1 and "invalid duration" in err
    code, _, err = cli("role", "grant", "ana", "owner")
    assert code == 1 and "unknown role" in err
    actions = [e["action"] for e in json.loads(cli("audit", "log", "--json")[1])]
    assert actions.count("token.create") == 1 and actions.count("grant.create") == 2


def test_through_a_server(local: Path) -> None:
    cli("role", "grant", "root", "admin")
    admin = cli("token", "create", "--user", "root")[1].strip()
    with running_server(local, env={"MODELYARD_AUTH": "true"}) as url:
        code, _, err = cli("role", "list", MODELYARD_URL=url)
        assert code == 1
        assert err.strip() == (
            "error: the server requires a token: set MODELYARD_TOKEN (create one with "
            "`modelyard token create`)"
        )
        as_admin = {"MODELYARD_URL": url, "MODELYARD_TOKEN": admin}
        code, secret, _ = cli("token", "create", "--user", "ed", **as_admin)
        assert code == 0
        assert cli("role", "grant", "ed", "editor", **as_admin)[0] == 0
        as_ed = {"MODELYARD_URL": url, "MODELYARD_TOKEN": secret.strip()}
        code, _, err = cli("role", "grant", "ed", "admin", **as_ed)
        assert code == 1 and "ed needs the admin role on every model" in err
        code, _, err = cli("models", "delete", "fraud", "--yes", **as_ed)
        assert code == 1 and "needs the admin role on model 'fraud'" in err
        code, out, _ = cli("token", "list", "--json", **as_admin)
        assert {t["user"] for t in json.loads(out)} == {"root", "ed"}
        code, _, err = cli("role", "list", MODELYARD_URL=url, MODELYARD_TOKEN="myd_wrong")
        assert code == 1 and "does not know" in err
