"""The server secret and the keys derived from it (page tokens, the audit chain)."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modelyard import Settings, Yard
from modelyard.errors import ConfigurationError
from modelyard.security import derive_key, load_secret


def test_a_secret_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = load_secret(configured=None, home=tmp_path / "home")
    path = tmp_path / "home" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32 and load_secret(configured=None, home=tmp_path / "home") == first
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary file left


def test_processes_racing_to_make_the_secret_agree(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: load_secret(configured=None, home=tmp_path), range(32)))
    assert len(secrets) == 1


def test_a_configured_secret_wins_and_each_purpose_gets_its_own_key(tmp_path: Path) -> None:
    assert load_secret(configured="from settings", home=tmp_path) == b"from settings"
    assert not (tmp_path / "secret.key").exists()
    audit, pages = derive_key(b"s", "audit-chain"), derive_key(b"s", "page-tokens")
    assert audit != pages and len(audit) == len(pages) == 32
    assert derive_key(b"t", "audit-chain") != audit
    with pytest.raises(ConfigurationError, match="unknown key purpose"):
        derive_key(b"s", "something else")


def test_a_damaged_secret_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("not hex\n")
    with pytest.raises(ConfigurationError, match="secret.key does not hold a hex secret"):
        load_secret(configured=None, home=tmp_path)


def test_the_client_seals_with_the_settings_secret(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'registry.db'}"
    mine = Settings(home=tmp_path / "a", database_url=database, secret_key="team secret")
    with Yard(mine) as yard:
        yard.registry.create_version("fraud")
        assert yard.verify_audit().ok
    same = Settings(home=tmp_path / "b", database_url=database, secret_key="team secret")
    with Yard(same) as yard:
        assert yard.verify_audit().ok  # another home, the same secret
    other = Settings(home=tmp_path / "c", database_url=database)
    with Yard(other) as yard:
        check = yard.verify_audit()
    assert not check.ok and "another key" in check.reason
