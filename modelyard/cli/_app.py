"""The root `modelyard` command; builds `Settings` once and hands it to every subcommand.

Building the app imports every command module, so those import only typer and the errors at
the top and their heavy dependencies (the client, SQLAlchemy, numpy, …) inside the commands:
`modelyard --help` stays fast (tests/test_import_weight.py checks what it imports)."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.main import get_command_name
from typer.models import CommandInfo

from modelyard.__about__ import __version__
from modelyard.cli import (
    _backup,
    _card,
    _explain,
    _import,
    _lifecycle,
    _monitor,
    _oci,
    _registry,
    _runs,
    _score,
    _serve,
    _server,
    _signing,
    _ui,
)
from modelyard.cli._build import build as build_command
from modelyard.cli._deploy import deploy_app
from modelyard.cli._distill import distill as distill_command
from modelyard.cli._optimize import optimize_app
from modelyard.cli._store import store_app
from modelyard.cli._tokens import role_app, token_app
from modelyard.cli._tune import tune as tune_command
from modelyard.cli._webhooks import webhook_app

_OPTIONS: dict[str, Any] = {
    "name": "modelyard",
    "help": "Model management: version, register, serve, watch, improve and explain models.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
}
app = typer.Typer(**_OPTIONS)
app.command("log")(_registry.log)
app.add_typer(_registry.models_app, name="models")
app.add_typer(_registry.versions_app, name="versions")
app.add_typer(_registry.alias_app, name="alias")
app.command("promote")(_lifecycle.promote)
app.command("approve")(_lifecycle.approve)
app.command("rollback")(_lifecycle.rollback)
app.command("lineage")(_lifecycle.lineage)
app.command("card")(_card.card)
app.add_typer(_lifecycle.gate_app, name="gate")
app.add_typer(_lifecycle.audit_app, name="audit")
app.add_typer(_lifecycle.db_app, name="db")
app.add_typer(_import.import_app, name="import")
app.add_typer(store_app, name="store")
app.command("server")(_server.server)
app.command("serve")(_serve.serve)
app.add_typer(_monitor.monitor_app, name="monitor")
optimize_app.command("distill")(distill_command)
app.add_typer(optimize_app, name="optimize")
app.command("explain")(_explain.explain)
app.command("tune")(tune_command)
app.add_typer(_runs.runs_app, name="runs")
app.add_typer(token_app, name="token")
app.add_typer(role_app, name="role")
app.add_typer(webhook_app, name="webhook")
app.command("sign")(_signing.sign)
app.command("verify")(_signing.verify)
app.command("backup")(_backup.backup)
app.command("restore")(_backup.restore)
app.command("ui")(_ui.ui)
app.command("build")(build_command)
app.add_typer(deploy_app, name="deploy")
app.command("push")(_oci.push)
app.command("pull")(_oci.pull)
app.command("score")(_score.score)


@app.callback()
def root(ctx: typer.Context) -> None:
    """Model management: version, register, serve, watch, improve and explain models.

    Configure with MODELYARD_* environment variables (MODELYARD_HOME, MODELYARD_STORE_URL, …).
    """
    from modelyard.errors import ModelyardError
    from modelyard.settings import load_settings

    try:
        ctx.obj = load_settings()
    except ModelyardError as error:  # a MODELYARD_* variable that does not parse: one line
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


@app.command()
def version() -> None:
    """Print the modelyard version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the `modelyard` console script."""
    narrowed(sys.argv[1:])()


def narrowed(args: list[str]) -> typer.Typer:
    """The app with only the command `args` name, when they name one: building the click
    command of every function (their signatures and type hints) costs each run 0.1-0.4 s,
    which a cold `modelyard serve` paid before loading a model. Anything else (`--help`, no
    command, an unknown one) gets the whole app, so help and errors list every command."""
    name = args[0] if args and not args[0].startswith("-") else None
    commands = [info for info in app.registered_commands if _name(info) == name]
    groups = [info for info in app.registered_groups if info.name == name]
    if not commands and not groups:
        return app
    slim = typer.Typer(**_OPTIONS)
    slim.callback()(root)
    slim.registered_commands.extend(commands)
    slim.registered_groups.extend(groups)
    return slim


def _name(info: CommandInfo) -> str | None:
    if info.name is not None:
        return info.name
    return None if info.callback is None else get_command_name(info.callback.__name__)
