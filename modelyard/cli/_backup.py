"""`modelyard backup PATH` and `modelyard restore PATH`: safe while servers run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._context import JsonFlag, settings_of
from modelyard.cli._output import emit_json, human_bytes, reports_errors
from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    from modelyard.registry import Backup
    from modelyard.settings import Settings


@reports_errors
def backup(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="New (or empty) folder to write the backup to.")],
    blobs: Annotated[
        bool,
        typer.Option(
            "--blobs/--no-blobs",
            help="Copy every blob of the store too (default); --no-blobs only checks that the "
            "store holds every blob the registry references (back the store up yourself).",
        ),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Back up the registry database (a consistent copy while servers write) and the store's
    blobs into PATH; check that every registered version's files are in it.

    On PostgreSQL, prints the `pg_dump` command to run for the database and copies the blobs.
    """
    from modelyard.registry import PG_DUMP_GUIDANCE, Database, back_up
    from modelyard.store import open_store

    settings = settings_of(ctx)
    _existing_sqlite(settings)
    database = Database(settings.database_url)
    database.open()
    try:
        result = back_up(database, open_store(settings), path, blobs=blobs)
        dialect = database.dialect
    finally:
        database.close()
    if dialect != "sqlite":
        typer.echo(PG_DUMP_GUIDANCE, err=True)
    _report(result, verb="backed up", as_json=as_json)
    if result.missing:
        raise typer.Exit(1)


@reports_errors
def restore(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A folder written by `modelyard backup`.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Restore even while processes have the database open; they refuse to write "
            "from then on (DatabaseReplaced) and must be restarted.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Put a backup's blobs back into the store, then replace the registry database with the
    backup's, atomically. Refuses while a process has the database open, unless --force;
    restart servers after. The replaced file is kept as registry.db.before-restore-<time>."""
    from sqlalchemy.engine import make_url

    from modelyard.registry import PG_DUMP_GUIDANCE, restore_backup
    from modelyard.store import open_store

    settings = settings_of(ctx)
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        typer.echo(PG_DUMP_GUIDANCE, err=True)
        raise ConfigurationError("restore puts back SQLite registries only; see above")
    target = Path(url.database).expanduser()
    result = restore_backup(path, target, open_store(settings), force=force)
    _report(result, verb="restored", as_json=as_json)
    if result.replaced is not None:
        typer.echo(f"the database it replaced is kept as {result.replaced}")
    typer.echo("restart every server and `modelyard serve` using this registry")
    if result.missing:
        raise typer.Exit(1)


def _existing_sqlite(settings: Settings) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not Path(url.database).expanduser().exists():
            raise ConfigurationError(f"there is no registry database at {url.database}")


def _report(result: Backup, *, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "path": str(result.path),
                "database_bytes": result.database_bytes,
                "manifests": len(result.manifests),
                "blobs": result.blobs,
                "blob_bytes": result.blob_bytes,
                "missing": result.missing,
                "replaced": str(result.replaced) if result.replaced else None,
            }
        )
        return
    typer.echo(
        f"{verb} {result.path}: database {human_bytes(result.database_bytes)}, "
        f"{len(result.manifests)} manifests referenced, {result.blobs} blobs "
        f"({human_bytes(result.blob_bytes)}) copied"
    )
    for digest in result.missing:
        typer.echo(f"missing: {digest}", err=True)
    if result.missing:
        typer.echo(
            f"error: {len(result.missing)} referenced blobs are missing; those versions "
            "cannot be loaded",
            err=True,
        )
