"""`modelyard card REF [--output FILE]`, embedded and through a server."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from modelyard.cli._app import root
from modelyard.cli._card import card
from tests.cli.test_registry import home
from tests.servers import running_server

_ = home  # the autouse fixture: a fresh MODELYARD_HOME per test

# The command as the root app registers it: `app.command("card")(card)`.
cli = typer.Typer()
cli.callback()(root)
cli.command("card")(card)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["card", *args])
    return result.exit_code, result.stdout, result.stderr


def registered(folder: Path) -> None:
    from modelyard import Yard

    (folder / "weights.bin").write_bytes(b"w" * 1000)
    with Yard() as yard:
        yard.log_model(folder, name="fraud", metrics={"auc": 0.93}, params={"lr": 0.1},
                       tags={"intended_use": "Review queues.", "license": "mit"},
                       alias="production", description="Scores payments")  # fmt: skip


def test_the_card_prints_as_markdown(tmp_path: Path) -> None:
    registered(tmp_path)
    code, out, err = run("fraud@production")
    assert code == 0, err
    meta = yaml.safe_load(out.split("---\n")[1])
    assert meta["license"] == "mit" and meta["library_name"] == "modelyard"
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.93
    for part in ("# Model card for fraud", "### Direct use\n\nReview queues.", "| lr | 0.1 |",
                 "| weights.bin | 1000 |", "## Lineage", "Scores payments"):  # fmt: skip
        assert part in out, part


def test_the_card_goes_to_a_file(tmp_path: Path) -> None:
    registered(tmp_path)
    target = tmp_path / "MODEL_CARD.md"
    code, out, err = run("fraud:1", "--output", str(target))
    assert code == 0, err
    assert out == "" and "wrote the card of fraud:1" in err
    assert target.read_text().startswith("---\nlibrary_name: modelyard\n")


def test_an_unknown_version_is_an_error(tmp_path: Path) -> None:
    registered(tmp_path)
    code, out, err = run("fraud:9")
    assert code != 0 and out == ""
    assert "fraud:9" in err or "version" in err


def test_the_card_through_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_server(tmp_path) as url:
        monkeypatch.setenv("MODELYARD_URL", url)
        folder = tmp_path / "model"
        folder.mkdir()
        registered(folder)
        code, out, err = run("fraud@production")
    assert code == 0, err
    assert "| weights.bin | 1000 |" in out and "### Direct use\n\nReview queues." in out
