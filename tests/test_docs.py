"""The generated CLI reference is current, and every command has help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from modelyard.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current(tmp_path: Path) -> None:
    generated = tmp_path / "cli.md"
    subprocess.run(
        [
            "typer",
            "modelyard.cli._app",
            "utils",
            "docs",
            "--name",
            "modelyard",
            "--output",
            generated,
        ],
        check=True,
        capture_output=True,
    )
    current = (ROOT / "docs" / "cli.md").read_text()
    assert generated.read_text() == current, "docs/cli.md is stale: run scripts/docs"


def walk(command: Any, path: str) -> list[tuple[str, Any]]:
    found = [(path, command)]
    # typer vendors its own click, so its groups are not `click.Group`: look for subcommands.
    commands = getattr(command, "commands", None)
    if commands:
        for name, sub in commands.items():
            found += walk(sub, f"{path} {name}")
    return found


def test_every_command_has_help_and_is_documented() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    for path, command in walk(typer.main.get_command(app), "modelyard"):
        assert command.help, f"`{path}` has no help"
        assert f"`{path}`" in reference, f"`{path}` is missing from docs/cli.md"


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(quickstart.strip().splitlines()) <= 15
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-c", quickstart], env=env, capture_output=True, text=True, check=True
    )
    assert len(result.stdout.split()) == 3  # three predicted classes
