"""`modelyard store …`: put folders into the blob store, restore them, verify, collect garbage."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard._scratch import clean_scratch
from modelyard.cli._context import JsonFlag, settings_of, yard_of
from modelyard.cli._output import emit_json, emit_table, human_bytes, reports_errors
from modelyard.errors import BlobNotFound, ConfigurationError, IntegrityError

if TYPE_CHECKING:
    from modelyard.registry import Registry, Root
    from modelyard.store import GarbageReport

store_app = typer.Typer(help="Content-addressed blob store: put, restore, ls, stats, verify, gc.")


@store_app.command("put")
@reports_errors
def put(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder to store.")],
    as_json: JsonFlag = False,
) -> None:
    """Store a folder; print the manifest digest that names it."""
    from modelyard.store import open_store, store_directory

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
    from modelyard.store import open_store, restore_directory

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
    from modelyard.store import load_manifest, open_store

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
    from modelyard.store import open_store

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
    from modelyard.store import open_store

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
        list[str] | None,
        typer.Option("--keep", help="Manifest digest to keep too (repeatable)."),
    ] = None,
    store_only: Annotated[
        bool,
        typer.Option(
            "--store-only",
            help="Keep only the --keep manifests: ignore the registry (a store without one).",
        ),
    ] = False,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete; without it, only list.")
    ] = False,
    grace_minutes: Annotated[
        float,
        typer.Option("--grace-minutes", help="Spare unreferenced blobs younger than this."),
    ] = 60.0,
    wait_seconds: Annotated[
        float,
        typer.Option("--wait-seconds", help="How long to wait for registrations in flight."),
    ] = 300.0,
    as_json: JsonFlag = False,
) -> None:
    """Find (and with --delete remove) blobs that nothing in the registry references.

    Everything a registered version, a run or a signature references is kept, whatever its
    age; so are unreferenced blobs younger than the grace period. Run it where the registry
    database is (not through MODELYARD_URL).
    """
    from modelyard.registry import registry_roots
    from modelyard.store import LocalStore, collect_garbage, open_store

    settings = settings_of(ctx)
    kept = list(keep or [])
    roots: Callable[[], Iterable[str | Root]]
    if store_only:
        if not kept:
            raise ConfigurationError(
                "--store-only keeps only the manifests named with --keep; name at least one "
                "(a collection that keeps nothing would delete every blob)"
            )
        roots = kept.copy
    else:
        registry = _local_registry(ctx)
        roots = lambda: [*kept, *registry_roots(registry.database)]  # noqa: E731
    store = open_store(settings)
    grace = timedelta(minutes=grace_minutes)
    report = collect_garbage(store, roots, dry_run=not delete, grace=grace, wait=wait_seconds)
    if isinstance(store, LocalStore) and delete:
        store.remove_stale_temporaries(older_than=grace.total_seconds())
        store.stat_cache().prune()
    if delete:  # what killed processes left: scratch under <home>/tmp/, staging in the cache
        clean_scratch(settings.home)
    _render(report, as_json=as_json)


def _local_registry(ctx: typer.Context) -> Registry:
    yard = yard_of(ctx)
    if yard.url:
        raise ConfigurationError(
            f"garbage collection runs where the registry database is, not through a server "
            f"({yard.url}): run `modelyard store gc` on that host with its "
            "MODELYARD_DATABASE_URL and MODELYARD_STORE_URL, and MODELYARD_URL unset"
        )
    return yard.local_registry()


def _render(report: GarbageReport, *, as_json: bool) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    if as_json:
        emit_json(
            {
                "dry_run": report.dry_run,
                "unreferenced": [info.digest for info in report.unreferenced],
                "bytes": report.reclaimable_bytes,
                "kept": report.kept,
                "roots": report.roots,
                "missing": report.missing,
            }
        )
        return
    for info in report.unreferenced:
        typer.echo(f"{verb} {info.digest} ({human_bytes(info.size)})")
    for holder in report.missing:
        typer.echo(f"missing: the blob of {holder} is not in the store", err=True)
    typer.echo(
        f"{verb} {len(report.unreferenced)} blobs ({human_bytes(report.reclaimable_bytes)}), "
        f"kept {report.kept} ({report.roots} references in the registry and --keep)"
    )
