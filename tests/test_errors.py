from __future__ import annotations

import inspect

import pytest

import modelyard.errors as errors
from modelyard._imports import require
from modelyard.errors import MissingDependency, ModelyardError


def all_errors() -> list[type[ModelyardError]]:
    return [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, ModelyardError)
    ]


def test_every_error_is_drawn_in_the_tree() -> None:
    tree = errors.__doc__ or ""
    for error in all_errors():
        assert error.__name__ in tree, f"{error.__name__} missing from the errors docstring"


def test_status_codes_are_http_statuses() -> None:
    for error in all_errors():
        assert 400 <= error.status_code < 600


def test_messages_say_what_to_do() -> None:
    assert 'pip install -e ".[s3]"' in str(MissingDependency("boto3", extra="s3"))
    bucket = errors.BucketNotFound("models")
    assert "'models'" in str(bucket) and "MODELYARD_STORE_URL" in str(bucket)
    integrity = errors.IntegrityError("sha256:" + "0" * 64, actual="sha256:" + "1" * 64)
    assert integrity.actual.endswith("1" * 64)


def test_require_imports_present_modules() -> None:
    assert require("json", extra="none").dumps([]) == "[]"


def test_require_names_the_extra_for_missing_modules() -> None:
    with pytest.raises(MissingDependency, match=r'pip install -e "\.\[torch\]"'):
        require("definitely_not_installed_module", extra="torch")


def test_require_shows_broken_imports_inside_a_present_module(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "brokenpkg.py").write_text("import another_missing_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="another_missing_module"):
        require("brokenpkg", extra="x")
