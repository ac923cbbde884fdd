from __future__ import annotations

import platform

import pytest

from modelyard.flavors import EnvironmentMismatch, capture_environment, check_environment
from modelyard.flavors._environment import installed_version


def test_capture_records_python_and_packages() -> None:
    environment = capture_environment(["scikit-learn", "not-a-package-xyz"])
    assert environment["python"] == platform.python_version()
    assert set(environment["packages"]) == {"numpy", "scikit-learn"}


def test_same_environment_is_quiet() -> None:
    assert check_environment(capture_environment(["numpy"]), what="m") == []


def test_other_major_version_warns_with_both_versions() -> None:
    numpy = installed_version("numpy")
    recorded = {"python": "2.7.18", "packages": {"numpy": "0.9.0", "gone-pkg-xyz": "1.0"}}
    with pytest.warns(EnvironmentMismatch) as caught:
        messages = check_environment(recorded, what="this sklearn model")
    assert len(caught) == 3
    assert "python 2.7.18" in messages[0]
    assert "gone-pkg-xyz 1.0, which is not installed" in messages[1]
    assert f"saved with numpy 0.9.0 and is loaded with numpy {numpy}" in messages[2]
    assert check_environment({}, what="m") == []
