"""A missing optional dependency names a fix that works: modelyard is not on PyPI, so
`pip install "modelyard[sklearn]"` would find nothing; the extra's own packages, read from the
installed metadata, and the clone's `pip install -e ".[sklearn]"` do."""

from __future__ import annotations

import pytest

from modelyard._imports import extra_packages, missing, require
from modelyard.errors import MissingDependency


def test_an_extras_packages_come_from_the_installed_metadata() -> None:
    assert {"scikit-learn", "skops", "joblib"} <= set(extra_packages("sklearn"))
    assert extra_packages("postgres") == ["'psycopg[binary]'"]  # quoted for the shell
    assert extra_packages("no-such-extra") == []
    assert extra_packages("sklearn", distribution="no-such-distribution-here") == []


def test_a_missing_module_names_the_packages_and_the_clone_install() -> None:
    with pytest.raises(MissingDependency) as raised:
        require("definitely_not_installed_module", extra="sklearn")
    message = str(raised.value)
    assert "pip install joblib scikit-learn skops" in message
    assert 'in a clone: pip install -e ".[sklearn]"' in message
    assert '"modelyard[' not in message
    assert raised.value.extra == "sklearn" and "skops" in raised.value.packages


def test_without_metadata_the_clone_install_is_named() -> None:
    error = MissingDependency("boto3", extra="s3")
    assert str(error) == (
        "boto3 is not installed; install it with: "
        "pip install -e \".[s3]\" in a clone of modelyard (modelyard's 's3' extra)"
    )
    assert missing("jwt", extra="oidc").packages == ("'pyjwt[crypto]'",)
