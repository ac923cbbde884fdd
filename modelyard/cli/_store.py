"""`modelyard store …`: put folders into the blob store, restore them, verify, collect garbage."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._context import JsonFlag, settings_of
from modelyard.cli._output import emit_json, emit_table, human_bytes, reports_errors
from modelyard.errors import BlobNotFound, IntegrityError
from modelyard.store import (
    LocalStore,
    collect_garbage,
    load_manifest,
    open_store,
    restore_directory,
    store_directory,
)

store_app = typer.Typer(help="Content-addressed blob store: put, restore, ls, stats, verify, gc.")


@store_app.command("put")
@reports_errors
def put(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder to store.")],
    as_json: JsonFlag = False,
) -> None:
    """Store a folder; print the manifest digest that names it."""
    manifest = store_directory(open_store(settings_of(ctx)), folder)
    summary = {"digest": manifest.digest, "files": len(manifest.entries), "bytes": manifest.size}
    if as_json:
        emit_json(summary)
    else:
        typer.echo(manifest.digest)


@store_app.command("restore")
@reports_errors
def restore(
    ctx: typer.Context,
    digest: Annotated[str, typer.Argument(help="Manifest digest, sha256:<hex>.")],
    target: Annotated[Path, typer.Argument(help="Folder to create (absent or empty).")],
) -> None:
    """Rebuild a stored folder byte for byte."""
    manifest = restore_directory(open_store(settings_of(ctx)), digest, target)
    typer.echo(
        f"restored {len(manifest.entries)} entries ({human_bytes(manifest.size)}) to {target}"
    )


@store_app.command("ls")
@reports_errors
def ls(
    ctx: typer.Context,
    digest: Annotated[str, typer.Argument(help="Manifest digest.")],
    as_json: JsonFlag = False,
) -> None:
    """List the entries of a stored folder."""
    manifest = load_manifest(open_store(settings_of(ctx)), digest)
    if as_json:
        emit_json(manifest.model_dump(mode="json"))
        return
    rows = [
        (entry.type, oct(entry.mode)[2:], entry.size, len(entry.chunks), entry.path)
        for entry in manifest.entries
    ]
    emit_table(["type", "mode", "size", "blobs", "path"], rows)


@store_app.command("stats")
@reports_errors
def stats(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Count the blobs in the store and the bytes they take."""
    store = open_store(settings_of(ctx))
    count = size = 0
    for info in store.blobs():
        count += 1
        size += info.size
    if as_json:
        emit_json({"blobs": count, "bytes": size})
    else:
        typer.echo(f"{count} blobs, {human_bytes(size)}")


@store_app.command("verify")
@reports_errors
def verify(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Read every blob back and check it against its digest; exit 1 if any is corrupt."""
    store = open_store(settings_of(ctx))
    bad: list[dict[str, str]] = []
    checked = 0
    for info in store.blobs():
        checked += 1
        try:
            for _ in store.get(info.digest):
                pass
        except (IntegrityError, BlobNotFound) as error:
            bad.append({"digest": info.digest, "error": str(error)})
    if as_json:
        emit_json({"checked": checked, "corrupt": bad})
    else:
        for item in bad:
            typer.echo(f"corrupt: {item['error']}", err=True)
        typer.echo(f"checked {checked} blobs, {len(bad)} corrupt")
    if bad:
        raise typer.Exit(1)


@store_app.command("gc")
@reports_errors
def gc(
    ctx: typer.Context,
    keep: Annotated[
        list[str] | None, typer.Option("--keep", help="Manifest digest to keep (repeatable).")
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete; without it, only list.")
    ] = False,
    grace_minutes: Annotated[
        float, typer.Option("--grace-minutes", help="Spare blobs younger than this.")
    ] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Find (and with --delete remove) blobs that no kept manifest references."""
    store = open_store(settings_of(ctx))
    grace = timedelta(minutes=grace_minutes)
    report = collect_garbage(store, keep or [], dry_run=not delete, grace=grace)
    if isinstance(store, LocalStore) and delete:
        store.remove_stale_temporaries(older_than=grace.total_seconds())
    verb = "deleted" if delete else "would delete"
    if as_json:
        digests = [info.digest for info in report.unreferenced]
        emit_json({"dry_run": report.dry_run, "unreferenced": digests, "kept": report.kept})
        return
    for info in report.unreferenced:
        typer.echo(f"{verb} {info.digest} ({human_bytes(info.size)})")
    typer.echo(
        f"{verb} {len(report.unreferenced)} blobs ({human_bytes(report.reclaimable_bytes)}), "
        f"kept {report.kept}"
    )
