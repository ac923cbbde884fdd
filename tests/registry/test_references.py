"""References as newcomers type them: MLflow's forms are understood, and a typo in a model or
alias name gets "did you mean", from the embedded registry and over HTTP alike."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard import Yard
from modelyard.errors import InvalidReference, ModelNotFound, NotFound, did_you_mean
from modelyard.registry import Reference, Registry


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("iris", Reference("iris")),
        ("iris:latest", Reference("iris")),
        ("iris:3", Reference("iris", number=3)),
        ("iris@production~2", Reference("iris", alias="production", back=2)),
        ("models:/iris/1", Reference("iris", number=1)),
        ("models:/iris/latest", Reference("iris")),
        ("models:/iris@production", Reference("iris", alias="production")),
        ("models:/iris@exp/lr-sweep", Reference("iris", alias="exp/lr-sweep")),
        ("models:/iris/Production", Reference("iris", alias="production")),
    ],
)
def test_forms(text: str, parsed: Reference) -> None:
    assert Reference.parse(text) == parsed


@pytest.mark.parametrize(
    "text", ["models:/iris", "models:/iris/0", "models:/iris/1/2", "models:/iris/Archived",
             "iris:LATEST", "iris:0", "runs:/abc/model", ""],
)  # fmt: skip
def test_what_does_not_parse_lists_the_forms(text: str) -> None:
    with pytest.raises(InvalidReference, match=r"NAME:latest .*models:/NAME/VERSION"):
        Reference.parse(text)


def test_did_you_mean() -> None:
    assert did_you_mean("irs", ["iris", "fraud"]) == "; did you mean 'iris'?"
    assert did_you_mean("zzz", ["iris"]) == ""
    assert did_you_mean("iris", ["iris"]) == ""  # the name itself is no suggestion
    assert " or " in did_you_mean("fraud-v", ["fraud-v1", "fraud-v2"])


def test_latest_means_the_highest_number(registry: Registry) -> None:
    for _ in range(3):
        registry.create_version("iris")
    registry.set_alias("iris", "production", "iris:1")
    assert registry.get_version("iris:latest").number == 3
    assert registry.get_version("models:/iris/latest").number == 3
    assert registry.get_version("models:/iris/2").number == 2
    assert registry.get_version("models:/iris@production").number == 1
    assert registry.get_version("models:/iris/Production").number == 1


@pytest.mark.parametrize("make_yard", ["local", "asgi"], indirect=True)
def test_typos_get_did_you_mean(make_yard: Any) -> None:
    yard: Yard = make_yard()
    yard.log_model(lambda_folder(yard), name="iris")
    yard.set_alias("iris", "production", "iris:1")
    with pytest.raises(ModelNotFound, match=r"model 'irsi' does not exist; did you mean 'iris'\?"):
        yard.get_version("irsi:1")
    with pytest.raises(NotFound, match=r"no alias 'prodution'; did you mean 'production'\?"):
        yard.get_version("iris@prodution")
    with pytest.raises(NotFound, match=r"has no alias 'prodution'; did you mean 'production'\?"):
        yard.delete_alias("iris", "prodution")
    with pytest.raises(ModelNotFound) as unknown:
        yard.get_version("unrelated")
    assert "did you mean" not in str(unknown.value)
    assert yard.get_version("models:/iris@production").ref == "iris:1"  # over HTTP too
    assert yard.get_version("iris:latest").ref == "iris:1"


def lambda_folder(yard: Yard) -> Any:
    """A tiny model folder (plain files) under the yard's home."""
    folder = yard.settings.home / "plain-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.bin").write_bytes(b"\x00" * 16)
    return folder
