from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from tests.servers import running_server


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MODELYARD_STORE_URL", "MODELYARD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELYARD_USER", "ana")
    return tmp_path / "home"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"w" * 1000)
    return root


def run(*args: str, user: str | None = None) -> tuple[int, str, str]:
    env = {"MODELYARD_USER": user} if user else None
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str, user: str | None = None) -> str:
    code, out, err = run(*args, user=user)
    assert code == 0, err
    return out


def test_register_list_show_search(folder: Path) -> None:
    assert ok("log", str(folder), "-n", "fraud", "--metric", "auc=0.9", "--param", "lr=0.1",
              "--tag", "team=risk").strip() == "fraud:1"  # fmt: skip
    (folder / "weights.bin").write_bytes(b"v" * 1000)
    version = json.loads(ok("log", str(folder), "-n", "fraud", "--metric", "auc=0.95",
                            "--alias", "champion", "--description", "tuned", "--json"))  # fmt: skip
    assert version["number"] == 2 and version["parents"] == ["fraud:1"]
    assert "champion=2" in ok("models", "list")
    assert json.loads(ok("models", "list", "--json"))[0]["name"] == "fraud"
    assert "@champion -> fraud:2" in ok("models", "show", "fraud")
    assert json.loads(ok("models", "show", "fraud", "--json"))["latest_version"] == 2
    assert ok("versions", "list", "fraud").splitlines()[2].startswith("fraud:2")
    assert len(json.loads(ok("versions", "list", "fraud", "--json"))) == 2
    shown = ok("versions", "show", "fraud@champion")
    assert "description: tuned" in shown and "metrics.auc: 0.95" in shown
    assert json.loads(ok("versions", "show", "fraud:1", "--json"))["params"] == {"lr": "0.1"}
    out = folder.parent / "downloaded"
    assert ok("versions", "download", "fraud@champion", str(out)).startswith("downloaded fraud:2")
    assert (out / "weights.bin").read_bytes() == b"v" * 1000
    found = ok("versions", "search", "metrics.auc > 0.92")
    assert "fraud:2" in found and "fraud:1" not in found
    page = json.loads(
        ok("versions", "search", "--limit", "1", "--order-by", "metrics.auc", "--json")
    )
    assert page["versions"][0]["number"] == 1 and page["next_page_token"]
    assert "more: --page-token" in ok("versions", "search", "name = 'fraud'", "--limit", "1")


def test_diff(folder: Path) -> None:
    ok("log", str(folder), "-n", "fraud", "--param", "lr=0.1")
    assert "are identical" in ok("versions", "diff", "fraud:1", "fraud:1")
    (folder / "weights.bin").write_bytes(b"v" * 1000)
    (folder / "extra.txt").write_text("new")
    ok("log", str(folder), "-n", "fraud", "--param", "lr=0.2")
    table = ok("versions", "diff", "fraud:1", "fraud:2")
    assert "params.lr" in table and "file extra.txt" in table and "1000 bytes differ" in table
    diff = json.loads(ok("versions", "diff", "fraud:1", "fraud:2", "--json"))
    assert diff["files_added"] == ["extra.txt"]


def test_aliases_promotion_gates_rollback(folder: Path) -> None:
    for _ in range(3):
        ok("log", str(folder), "-n", "fraud", "--metric", "auc=0.95")
    assert (
        ok("alias", "set", "fraud@production", "fraud:1").strip() == "fraud@production -> fraud:1"
    )
    ok("alias", "set", "fraud@production", "fraud:2", "--reason", "better")
    assert "better" in ok("alias", "history", "fraud@production")
    assert len(json.loads(ok("alias", "history", "fraud", "--json"))) == 2
    assert ok("rollback", "fraud").strip() == "fraud@production -> fraud:1"
    ok("alias", "set", "fraud@production", "fraud:3")
    assert json.loads(ok("rollback", "fraud@production", "--json"))["number"] == 1
    ok("alias", "set", "fraud@canary", "fraud:3")
    assert "removed fraud@canary" in ok("alias", "rm", "fraud@canary")

    assert "added" in ok("gate", "add", "fraud", "metric", "metric=auc", "op=>=", "value=0.9")
    ok("gate", "add", "fraud", "approval", "count=1")
    gates = json.loads(ok("gate", "list", "fraud", "--json"))
    assert [g["kind"] for g in gates] == ["metric", "approval"]
    assert "approval" in ok("gate", "list", "fraud")
    assert json.loads(ok("promote", "fraud:3", "validated", "--json"))["state"] == "validated"
    ok("promote", "fraud:3", "staging", "--comment", "shadow first")
    code, _, err = run("promote", "fraud:3", "production")
    assert code == 1 and "needs 1 approval(s)" in err
    code, _, err = run("approve", "fraud:3")
    assert code == 1 and "ana created fraud:3 and cannot approve it" in err
    assert "approved" in ok("approve", "fraud:3", "--comment", "lgtm", user="ben")
    assert ok("promote", "fraud:3", "production").strip() == "fraud:3 is now production"
    ok("gate", "rm", "fraud", gates[0]["id"])
    assert len(json.loads(ok("gate", "list", "fraud", "--json"))) == 1


def test_lineage_audit_db_delete(folder: Path) -> None:
    ok("log", str(folder), "-n", "fraud")
    ok("log", str(folder), "-n", "fraud")
    ok("log", str(folder), "-n", "fraud", "--parent", "fraud:1", "--parent", "fraud:2")
    assert "fraud:1 -> fraud:3 (merge)" in ok("lineage", "fraud:3")
    assert json.loads(ok("lineage", "fraud:1", "--json"))["descendants"] == ["fraud:2", "fraud:3"]
    assert "version.create" in ok("audit", "log", "fraud")
    assert len(json.loads(ok("audit", "log", "--limit", "2", "--json"))) == 2
    assert "audit chain intact" in ok("audit", "verify")
    assert json.loads(ok("audit", "verify", "--json"))["ok"] is True
    assert ok("db", "pending").strip() == "none"
    assert ok("db", "upgrade").strip() == "already up to date"
    assert "deleted fraud:3" in ok("versions", "delete", "fraud:3")
    assert "deleted fraud" in ok("models", "delete", "fraud", "--yes")


def test_broken_audit_chain_exits_1(folder: Path, home: Path) -> None:
    import sqlite3

    ok("log", str(folder), "-n", "fraud")
    with sqlite3.connect(home / "registry.db") as connection:
        connection.execute("update audit_events set actor = 'mallory' where seq = 1")
    code, _, err = run("audit", "verify")
    assert code == 1 and "broken at event 1" in err
    code, out, _ = run("audit", "verify", "--json")
    assert code == 1 and json.loads(out)["bad_seq"] == 1


def test_db_upgrade_on_a_fresh_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    migrations = [
        "0001_initial",
        "0002_principals",
        "0003_idempotency",
        "0004_webhooks",
        "0005_prediction_log",
        "0006_leases",
        "0007_tag_statistics",
    ]
    assert ok("db", "pending").split() == migrations
    assert ok("db", "upgrade").strip() == f"applied {', '.join(migrations)}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["versions", "show", "fraud:0"], "invalid reference 'fraud:0'"),
        (["versions", "show", "nope"], "model 'nope' does not exist"),
        (["alias", "set", "fraud", "fraud:1"], "expected NAME@ALIAS"),
        (["log", ".", "-n", "fraud", "--metric", "auc"], "metric 'auc' must look like KEY=VALUE"),
        (["versions", "search", "metrics.auc >="], "invalid filter at column 15"),
        (["promote", "fraud:1", "live"], "unknown state 'live'"),
    ],
)
def test_mistakes_are_one_line_errors(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 1
    assert message in err and "Traceback" not in out + err


def test_model_update_sets_description_and_tags(folder: Path) -> None:
    ok("log", str(folder), "-n", "fraud")
    assert ok("models", "update", "fraud", "--description", "Card fraud", "--tag", "team=risk",
              "--tag", "tier=1").strip() == "fraud"  # fmt: skip
    shown = ok("models", "show", "fraud")
    assert "Card fraud" in shown and "tag team=risk" in shown and "tag tier=1" in shown
    model = json.loads(ok("models", "update", "fraud", "--delete-tag", "tier", "--json"))
    assert (model["description"], model["tags"]) == ("Card fraud", {"team": "risk"})
    code, out, err = run("models", "update", "nope", "--description", "x")
    assert code == 1 and "model 'nope' does not exist" in err and "Traceback" not in out + err
    code, _, err = run("models", "update", "fraud", "--tag", "team")
    assert code == 1 and "tag 'team' must look like KEY=VALUE" in err


def test_model_delete_asks_first(folder: Path) -> None:
    ok("log", str(folder), "-n", "fraud")
    result = CliRunner().invoke(app, ["models", "delete", "fraud"], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    result = CliRunner().invoke(app, ["models", "delete", "fraud"], input="y\n")
    assert result.exit_code == 0 and "deleted fraud" in result.output


def stored_bytes() -> int:
    return int(json.loads(ok("store", "stats", "--json"))["bytes"])


def collect() -> None:
    ok("store", "gc", "--delete", "--grace-minutes", "0")


def test_deleting_a_version_reports_its_unique_bytes_and_gc_frees_them(
    folder: Path, tmp_path: Path
) -> None:
    ok("log", str(folder), "-n", "fraud")  # weights.bin, shared with fraud:2
    ok("log", str(folder), "-n", "fraud")  # the same files: nothing of its own
    unique = os.urandom(300_000)
    (folder / "head.bin").write_bytes(unique)
    ok("log", str(folder), "-n", "fraud")

    shared = ok("versions", "delete", "fraud:2")
    assert shared.strip() == "deleted fraud:2; every blob it used is shared, so gc frees nothing"
    before = stored_bytes()
    freed = json.loads(ok("versions", "delete", "fraud:3", "--json"))
    assert freed["deleted"] == "fraud:3" and freed["unique_blobs"] >= 2  # head.bin, manifest
    assert freed["unique_bytes"] >= len(unique)
    collect()
    assert before - stored_bytes() >= freed["unique_bytes"]
    out = tmp_path / "fraud-1"
    ok("versions", "download", "fraud:1", str(out))  # what was shared is still there
    assert (out / "weights.bin").read_bytes() == b"w" * 1000

    (folder / "head.bin").write_bytes(os.urandom(100_000))
    ok("log", str(folder), "-n", "fraud")
    message = ok("versions", "delete", "fraud:4")
    assert re.fullmatch(
        r"deleted fraud:4; \d+\.\d KiB in \d+ blobs only it used, freed by "
        r"`modelyard store gc --delete`\n",
        message,
    ), message


def test_deleting_a_model_reports_its_unique_bytes_and_gc_frees_them(folder: Path) -> None:
    ok("log", str(folder), "-n", "fraud")
    ok("log", str(folder), "-n", "other")  # shares every blob with fraud
    (folder / "head.bin").write_bytes(os.urandom(200_000))
    ok("log", str(folder), "-n", "fraud")
    before = stored_bytes()
    freed = json.loads(ok("models", "delete", "fraud", "--yes", "--json"))
    assert freed["deleted"] == "fraud" and freed["unique_bytes"] >= 200_000
    collect()
    assert before - stored_bytes() >= freed["unique_bytes"]
    assert re.fullmatch(
        r"deleted other; 1\.\d KiB in 2 blobs only its versions used, freed by "
        r"`modelyard store gc --delete`\n",
        ok("models", "delete", "other", "--yes"),
    )


def test_deleting_through_a_server_leaves_the_count_to_its_gc(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(tmp_path) as url:
        monkeypatch.setenv("MODELYARD_URL", url)
        ok("log", str(folder), "-n", "fraud")
        ok("log", str(folder), "-n", "fraud")
        assert ok("versions", "delete", "fraud:2").strip() == (
            "deleted fraud:2; `modelyard store gc --delete` on the server frees its bytes"
        )
        assert json.loads(ok("models", "delete", "fraud", "--yes", "--json")) == {
            "deleted": "fraud", "unique_blobs": None, "unique_bytes": None,
        }  # fmt: skip
