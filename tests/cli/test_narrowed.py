"""The console script builds only the command it runs; help and mistakes get the whole app."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from modelyard.cli._app import app, narrowed


def names(built: typer.Typer) -> list[str]:
    commands = [info.name or info.callback.__name__ for info in built.registered_commands]  # type: ignore[union-attr]
    return sorted([*commands, *(str(info.name) for info in built.registered_groups)])


def test_a_command_is_built_alone() -> None:
    assert names(narrowed(["serve", "iris", "--port", "0"])) == ["serve"]
    assert names(narrowed(["versions", "list", "iris"])) == ["versions"]
    assert names(narrowed(["version"])) == ["version"]  # named after its function


def test_help_and_unknown_commands_get_every_command() -> None:
    for args in ([], ["--help"], ["nope"], ["--nope", "serve"]):
        assert narrowed(args) is app


def test_the_narrowed_app_runs_the_command() -> None:
    result = CliRunner().invoke(narrowed(["version"]), ["version"])
    assert result.exit_code == 0 and result.output.strip()
    helped = CliRunner().invoke(narrowed(["serve", "--help"]), ["serve", "--help"])
    assert helped.exit_code == 0 and "--trust-module" in helped.output


def test_the_console_script_names_a_missing_argument() -> None:
    done = subprocess.run([sys.executable, "-m", "modelyard", "serve"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 2 and "Missing argument" in done.stderr
