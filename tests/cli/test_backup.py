"""`modelyard backup` and `modelyard restore`, against a real `modelyard server` that keeps
registering meanwhile."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from modelyard import Settings, Yard
from modelyard.cli import app
from modelyard.store import LocalStore
from tests.servers import running_server


@pytest.fixture
def server_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The home a `running_server(tmp_path)` uses; the CLI is pointed at it."""
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "server-home"))
    monkeypatch.delenv("MODELYARD_STORE_URL", raising=False)
    monkeypatch.delenv("MODELYARD_DATABASE_URL", raising=False)
    return tmp_path / "server-home"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def numbers(path: Path) -> list[int]:
    with sqlite3.connect(path) as connection:
        found = [row[0] for row in connection.execute("SELECT number FROM versions ORDER BY 1")]
    connection.close()
    return found


def log_model(url: str, tmp_path: Path, text: str) -> str:
    folder = tmp_path / f"model-{text}"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(text.encode() * 50_000)
    yard = Yard(Settings(home=tmp_path / "client"), url=url)
    try:
        return yard.log_model(folder, name="fraud").ref
    finally:
        yard.close()


@contextmanager
def registering(url: str) -> Iterator[list[int]]:
    """Registers metadata-only versions of `churn` in a thread until the block ends; yields
    the acknowledged version numbers, in order."""
    acknowledged: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                answer = client.post(f"{url}/api/v1/models/churn/versions", json={})
                if answer.status_code != 201:
                    return
                acknowledged.append(answer.json()["number"])

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield acknowledged
    finally:
        stop.set()
        thread.join(timeout=30)


def churn(path: Path) -> list[int]:
    with sqlite3.connect(path) as connection:
        found = [
            row[0]
            for row in connection.execute(
                "SELECT v.number FROM versions v JOIN models m ON m.id = v.model_id "
                "WHERE m.name = 'churn' ORDER BY 1"
            )
        ]
    connection.close()
    return found


def test_backup_and_restore_round_trip_while_a_server_registers(
    tmp_path: Path, server_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = tmp_path / "backup"
    with running_server(tmp_path) as url:
        ref = log_model(url, tmp_path, "a")
        with registering(url) as acknowledged:
            while len(acknowledged) < 5:
                threading.Event().wait(0.01)
            before = len(acknowledged)
            code, out, err = run("backup", str(backup))
            after = len(acknowledged)
        assert code == 0, err
        assert "1 manifests referenced" in out
    copied = churn(backup / "registry.db")
    # A consistent snapshot: every version acknowledged before the backup began, in order,
    # with no gap, and nothing that was never acknowledged (one in flight may be in it).
    assert copied == list(range(1, len(copied) + 1)) == acknowledged[: len(copied)]
    assert before <= len(copied) <= after + 1
    summary = json.loads((backup / "backup.json").read_text())
    assert summary["missing"] == [] and len(summary["manifests"]) == 1
    assert LocalStore(backup / "blobs").exists(summary["manifests"][0])

    # Restore into a new home with an empty store: every version is there and loads.
    fresh = tmp_path / "fresh-home"
    monkeypatch.setenv("MODELYARD_HOME", str(fresh))
    written = (backup / "registry.db").read_bytes()
    code, out, err = run("restore", str(backup))
    assert code == 0, err
    assert "restart every server" in out
    assert (backup / "registry.db").read_bytes() == written  # a restore only reads the backup
    assert sorted(p.name for p in fresh.iterdir()) == ["blobs", "registry.db"]
    yard = Yard(Settings(home=fresh))
    try:
        assert sorted(v.number for v in yard.list_versions("churn")) == copied
        restored = yard.download(ref, tmp_path / "downloaded")
        assert (restored / "weights.bin").read_bytes() == b"a" * 50_000
    finally:
        yard.close()


def test_restore_refuses_while_a_server_has_the_database_open(
    tmp_path: Path, server_home: Path
) -> None:
    backup = tmp_path / "backup"
    database = server_home / "registry.db"
    with running_server(tmp_path) as url:
        log_model(url, tmp_path, "a")
        assert run("backup", str(backup))[0] == 0
        log_model(url, tmp_path, "b")

        code, _, err = run("restore", str(backup))
        assert code == 1
        assert "open in another process" in err and "--force" in err
        assert numbers(database) == [1, 2]  # untouched

        code, out, err = run("restore", str(backup), "--force")
        assert code == 0, err
        kept = next(server_home.glob("registry.db.before-restore-*[0-9]Z"))
        assert f"kept as {kept}" in out
        # The server notices and refuses, rather than writing into the file it had open.
        refused = httpx.post(f"{url}/api/v1/models/fraud/versions", json={})
        assert (refused.status_code, refused.json()["type"]) == (503, "DatabaseReplaced")
    assert numbers(database) == [1]  # the backup
    assert numbers(kept) == [1, 2]  # what it replaced, with its log
    with running_server(tmp_path) as url:  # restarted: serves the restored registry
        listed = httpx.get(f"{url}/api/v1/models/fraud/versions").json()
        assert [v["number"] for v in listed] == [1]
        httpx.post(f"{url}/api/v1/models/fraud/versions", json={}).raise_for_status()
    # Servers stopped: no --force needed, and the file it replaces is kept whole.
    code, out, err = run("restore", str(backup))
    assert code == 0, err
    assert numbers(database) == [1]
    assert len(list(server_home.glob("registry.db.before-restore-*[0-9]Z"))) == 2
    assert not database.with_name("registry.db-wal").exists()
    assert max(server_home.glob("registry.db.before-restore-*[0-9]Z")).name in out
    assert numbers(Path(out.split("kept as ")[1].split()[0])) == [1, 2]


def test_backup_refuses_a_folder_in_use_and_reports_missing_blobs(
    tmp_path: Path, server_home: Path
) -> None:
    with running_server(tmp_path) as url:
        log_model(url, tmp_path, "a")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    code, _, err = run("backup", str(tmp_path / "full"))
    assert code == 1 and "not empty" in err
    store = LocalStore(server_home / "blobs")
    victim = max(store.blobs(), key=lambda info: info.size).digest
    store.delete(victim)
    code, _, err = run("backup", str(tmp_path / "b"), "--no-blobs")
    assert code == 1
    assert f"missing: {victim}" in err and "cannot be loaded" in err
    assert not (tmp_path / "b" / "blobs").exists()


def test_backup_needs_a_registry(tmp_path: Path, server_home: Path) -> None:
    code, _, err = run("backup", str(tmp_path / "b"))
    assert code == 1 and "no registry database" in err
    assert not server_home.exists()


def test_postgresql_gets_pg_dump_guidance(
    tmp_path: Path, server_home: Path, monkeypatch: pytest.MonkeyPatch, fresh_postgres: str
) -> None:
    monkeypatch.setenv("MODELYARD_DATABASE_URL", fresh_postgres)
    with Yard(Settings(home=server_home, database_url=fresh_postgres)) as yard:
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"w" * 1000)
        yard.log_model(folder, name="fraud")
    code, out, err = run("backup", str(tmp_path / "b"))
    assert code == 0, err
    assert "pg_dump --format=custom" in err and "1 manifests referenced" in out
    assert not (tmp_path / "b" / "registry.db").exists()
    assert json.loads((tmp_path / "b" / "backup.json").read_text())["missing"] == []
    code, _, err = run("restore", str(tmp_path / "b"))
    assert code == 1
    assert "pg_restore" in err and "SQLite registries only" in err
