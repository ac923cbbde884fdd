from __future__ import annotations

from pathlib import Path

import pytest

from modelyard import Settings


def test_defaults_live_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path))
    settings = Settings()
    assert settings.home == tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path / 'registry.db'}"
    assert settings.store_url == (tmp_path / "blobs").as_uri()
    assert settings.s3_endpoint_url is None


def test_home_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MODELYARD_HOME", raising=False)
    assert Settings().home == tmp_path / ".modelyard"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_STORE_URL", "s3://bucket/prefix")
    monkeypatch.setenv("MODELYARD_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("MODELYARD_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.store_url == "s3://bucket/prefix"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.database_url == "postgresql+psycopg://u@h/db"


def test_keyword_arguments_win(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, store_url="file:///elsewhere")
    assert settings.store_url == "file:///elsewhere"


def test_every_field_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no docstring"
