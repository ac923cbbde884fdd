"""A registry file replaced, deleted, stubbed or truncated under a process: never split, never
migrated over, always a typed error that says what to do."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from modelyard.errors import DatabaseReplaced, InvalidDatabase, RegistryUnavailable
from modelyard.registry import Database, Registry
from tests.servers import running_server


@pytest.fixture
def registry_file(tmp_path: Path, sqlite_template: Path) -> Path:
    path = tmp_path / "registry.db"
    shutil.copy(sqlite_template, path)
    return path


def opened(path: Path) -> Registry:
    database = Database(f"sqlite:///{path}")
    database.open()
    return Registry(database, actor="ana")


def versions_in(path: Path) -> list[int]:
    """Version numbers in an SQLite registry (and its -wal, if one lies beside it)."""
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT number FROM versions ORDER BY 1")]


def test_a_file_replaced_by_a_rename_is_refused_for_reads_and_writes(registry_file: Path) -> None:
    registry = opened(registry_file)
    registry.create_version("fraud")
    copy = registry_file.with_name("copy.db")
    shutil.copy(registry_file, copy)
    os.replace(copy, registry_file)
    with pytest.raises(DatabaseReplaced, match="replaced by another file.*Restart"):
        registry.create_version("fraud")
    with pytest.raises(DatabaseReplaced):
        registry.list_versions("fraud")
    registry.database.close()


def test_a_deleted_file_is_refused_and_not_written_to(registry_file: Path) -> None:
    registry = opened(registry_file)
    registry.create_version("fraud")
    kept = registry_file.with_name("kept.db")
    os.link(registry_file, kept)
    for path in registry_file.parent.glob("registry.db*"):
        path.unlink()
    with pytest.raises(DatabaseReplaced, match="was deleted") as caught:
        registry.create_version("fraud")
    assert caught.value.vanished and isinstance(caught.value, RegistryUnavailable)
    assert caught.value.status_code == 503
    registry.database.close()
    assert not registry_file.exists()  # nothing was created in its place


def test_a_write_in_flight_when_the_file_is_replaced_is_rolled_back(registry_file: Path) -> None:
    registry = opened(registry_file)
    kept = registry_file.with_name("kept.db")
    os.link(registry_file, kept)
    copy = registry_file.with_name("copy.db")
    shutil.copy(registry_file, copy)
    with pytest.raises(DatabaseReplaced), registry.database.write() as connection:
        connection.exec_driver_sql("CREATE TABLE scratch (x)")
        os.replace(copy, registry_file)  # after the write began, before it commits
    registry.database.close()
    for path in (kept, registry_file):
        with sqlite3.connect(path) as check:
            tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master")}
        check.close()
        assert "scratch" not in tables and "versions" in tables


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "file is empty"),
        (b"\0" * 4096, "not an SQLite database"),
    ],
)
def test_a_stub_is_refused_and_never_migrated(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(content)
    with pytest.raises(InvalidDatabase, match=reason):
        Database(f"sqlite:///{path}").open()
    assert path.read_bytes() == content


def test_an_sqlite_file_without_tables_is_a_stub(tmp_path: Path) -> None:
    # What a create interrupted by another process's rename left: a WAL header page, no tables.
    path = tmp_path / "registry.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    with pytest.raises(InvalidDatabase, match="no tables.*modelyard restore"):
        Database(f"sqlite:///{path}").open()


def test_a_truncated_file_is_refused(registry_file: Path) -> None:
    size = registry_file.stat().st_size
    with registry_file.open("r+b") as file:
        file.truncate(size // 2 + 100)
    with pytest.raises(InvalidDatabase, match="truncated"):
        Database(f"sqlite:///{registry_file}").open()


def test_a_missing_file_with_its_log_still_there_is_not_recreated(registry_file: Path) -> None:
    registry = opened(registry_file)
    registry.create_version("fraud")
    wal = registry_file.with_name("registry.db-wal")
    assert wal.stat().st_size > 0  # the version is in the log, not yet in the file
    kept = registry_file.with_name("kept.db")
    os.link(registry_file, kept)
    registry_file.unlink()  # a rename in flight, or an `rm registry.db` without its -wal
    with pytest.raises(InvalidDatabase, match="write-ahead log registry.db-wal is there"):
        Database(f"sqlite:///{registry_file}").open()
    assert not registry_file.exists()
    registry.database.close()


def test_a_new_registry_is_created_whole_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "new" / "registry.db"
    database = Database(f"sqlite:///{path}")
    database.open()  # not yet migrated: an empty file, but one modelyard made
    again = Database(f"sqlite:///{path}")
    again.open()
    database.migrate()
    again.close()
    database.close()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_many_processes_creating_one_registry_at_once(tmp_path: Path) -> None:
    path = tmp_path / "home" / "registry.db"
    script = (
        "import sys; from modelyard.registry import Database, Registry\n"
        "d = Database(sys.argv[1]); d.open(); d.migrate()\n"
        "Registry(d, actor='x').create_version('fraud'); d.close()\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script, f"sqlite:///{path}"]) for _ in range(4)
    ]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0, 0]
    assert versions_in(path) == [1, 2, 3, 4]


# a real server process ------------------------------------------------------------------------


def register(url: str, number: int) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/models/fraud/versions", json={"tags": {"n": str(number)}})


def test_a_server_whose_file_is_replaced_refuses_and_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    """The issue's scenario: `rm registry.db*` and a backup copied in while the server runs."""
    database = tmp_path / "server-home" / "registry.db"
    with running_server(tmp_path) as url:
        acknowledged = [register(url, n).json()["number"] for n in range(3)]
        backup = tmp_path / "backup.db"
        with sqlite3.connect(database) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        live.close()
        copy.close()
        acknowledged += [register(url, n).json()["number"] for n in range(3, 6)]
        # Keep the old file and its log reachable, as the server's open descriptors do.
        kept = tmp_path / "kept.db"
        os.link(database, kept)
        os.link(database.with_name("registry.db-wal"), tmp_path / "kept.db-wal")
        for path in database.parent.glob("registry.db*"):
            path.unlink()
        shutil.copy(backup, database)

        refused = register(url, 6)
        assert refused.status_code == 503
        assert refused.json()["type"] == "DatabaseReplaced"
        assert "Restart" in refused.json()["error"]
        reads = httpx.get(f"{url}/api/v1/models/fraud/versions")
        assert reads.status_code == 503
    assert acknowledged == [1, 2, 3, 4, 5, 6]
    assert versions_in(kept) == acknowledged  # every acknowledged write, in the old file
    assert versions_in(database) == [1, 2, 3]  # the backup, and nothing written after it


def test_a_serving_process_says_so_when_its_registry_is_replaced(tmp_path: Path) -> None:
    import numpy as np
    from sklearn.dummy import DummyRegressor

    from modelyard import Settings, Yard
    from tests.servers import serving_process

    home = tmp_path / "home"
    model = DummyRegressor(strategy="constant", constant=1.0).fit(np.zeros((2, 3)), [0, 0])
    with Yard(Settings(home=home)) as yard:
        yard.log_model(model, name="fraud", input_example=np.zeros((1, 3)), alias="production")
    env = {"MODELYARD_SERVE_POLL_SECONDS": "0.1"}
    with serving_process(home, "fraud@production", env=env) as url:
        copy = tmp_path / "copy.db"
        shutil.copy(home / "registry.db", copy)
        os.replace(copy, home / "registry.db")
        for _ in range(100):
            if httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 503:
                break
            time.sleep(0.1)
        # Not ready (an orchestrator restarts it), still live and still answering.
        assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 503
        assert httpx.get(f"{url}/v2/health/live", timeout=5).status_code == 200
        body = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64",
                            "data": [0, 0, 0]}]}  # fmt: skip
        assert httpx.post(f"{url}/v2/models/fraud/infer", json=body, timeout=5).status_code == 200
    text = (tmp_path / "serve.log").read_text()
    assert "fraud@production: not ready" in text
    assert "was replaced by another file" in text and "Restart this process" in text
