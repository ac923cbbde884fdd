from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.store import LocalStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MODELYARD_STORE_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(bytes(range(256)) * 8000)
    (root / "config.json").write_text("{}")
    return root


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_put_ls_restore(home: Path, folder: Path, tmp_path: Path) -> None:
    code, out, _ = run("store", "put", str(folder))
    assert code == 0
    digest = out.strip()
    assert digest.startswith("sha256:")

    code, out, _ = run("store", "ls", digest)
    assert code == 0 and "weights.bin" in out and "config.json" in out

    code, out, _ = run("store", "ls", digest, "--json")
    assert json.loads(out)["format"] == "modelyard.manifest/1"

    code, out, _ = run("store", "restore", digest, str(tmp_path / "copy"))
    assert code == 0 and "restored 2 entries" in out
    assert (tmp_path / "copy" / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()


def test_put_json(home: Path, folder: Path) -> None:
    code, out, _ = run("store", "put", str(folder), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["files"] == 2 and summary["bytes"] == 2048002


def test_stats_verify_and_gc(home: Path, folder: Path) -> None:
    digest = run("store", "put", str(folder))[1].strip()
    code, out, _ = run("store", "stats", "--json")
    blobs = json.loads(out)["blobs"]
    assert blobs > 2
    assert run("store", "stats")[1].startswith(f"{blobs} blobs")

    code, out, _ = run("store", "verify")
    assert code == 0 and "0 corrupt" in out

    code, out, _ = run("store", "gc", "--keep", digest, "--grace-minutes", "0")
    assert code == 0 and "would delete 0 blobs" in out
    code, out, _ = run("store", "gc", "--store-only", "--keep", digest, "--grace-minutes", "0")
    assert code == 0 and "would delete 0 blobs" in out
    # A folder put with `store put` is referenced by nothing in the (empty) registry.
    code, out, _ = run("store", "gc", "--grace-minutes", "0", "--json")
    assert len(json.loads(out)["unreferenced"]) == blobs
    code, out, _ = run("store", "gc", "--grace-minutes", "0", "--delete")
    assert code == 0 and f"deleted {blobs} blobs" in out
    assert json.loads(run("store", "stats", "--json")[1])["blobs"] == 0


def test_gc_keeps_what_the_registry_references(home: Path, folder: Path) -> None:
    code, out, err = run("log", str(folder), "--name", "fraud")
    assert code == 0, err
    code, out, _ = run("store", "gc", "--grace-minutes", "0")
    assert code == 0 and out.startswith("would delete 0 blobs")
    code, out, _ = run("store", "gc", "--grace-minutes", "0", "--delete", "--json")
    assert json.loads(out)["unreferenced"] == [] and json.loads(out)["roots"] == 1
    code, _, err = run("versions", "download", "fraud:1", str(home.parent / "out"))
    assert code == 0, err


def test_gc_refuses_what_it_cannot_know(
    home: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run("store", "gc", "--store-only", "--delete")
    assert code == 1 and "name at least one" in err
    monkeypatch.setenv("MODELYARD_URL", "http://127.0.0.1:9")
    code, _, err = run("store", "gc")
    assert code == 1 and "runs where the registry database is" in err


def test_verify_reports_corruption(home: Path, folder: Path) -> None:
    run("store", "put", str(folder))
    store = LocalStore(home / "blobs")
    victim = next(store.blobs()).digest
    store.path(victim).chmod(0o644)
    store.path(victim).write_bytes(b"tampered")
    code, out, err = run("store", "verify")
    assert code == 1
    assert "1 corrupt" in out and victim in err
    code, out, _ = run("store", "verify", "--json")
    assert json.loads(out)["corrupt"][0]["digest"] == victim


def test_user_mistakes_exit_1_with_one_line(home: Path, tmp_path: Path) -> None:
    code, out, err = run("store", "ls", "sha256:nope")
    assert code == 1
    assert err.strip().startswith("error: invalid reference 'sha256:nope'")
    assert "Traceback" not in out + err
    code, _, err = run("store", "restore", "sha256:" + "0" * 64, str(tmp_path / "x"))
    assert code == 1 and "is not in the store" in err


def test_bad_store_url(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_STORE_URL", "ftp://example/blobs")
    code, _, err = run("store", "stats")
    assert code == 1 and "is not supported" in err
    monkeypatch.setenv("MODELYARD_STORE_URL", "file://host/blobs")
    code, _, err = run("store", "stats")
    assert code == 1 and "names a host" in err


def test_version_and_help() -> None:
    code, out, _ = run("version")
    assert code == 0 and out.strip() == __import__("modelyard").__version__
    code, out, _ = run("--help")
    assert code == 0 and "store" in out


def test_console_script_runs_for_real(home: Path, folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", "store", "put", str(folder), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["files"] == 2
