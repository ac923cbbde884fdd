"""`modelyard log|models|versions|alias …`: register, list, show, search, diff and delete."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._context import JsonFlag, emit_records, parse_pairs, yard_of
from modelyard.cli._output import emit_json, emit_table, human_bytes, reports_errors

if TYPE_CHECKING:
    from modelyard.registry import ModelVersion, TensorChange
    from modelyard.store import UniqueBytes

models_app = typer.Typer(help="Models: list, show, update, delete.", no_args_is_help=True)
versions_app = typer.Typer(
    help="Versions: list, show, search, diff, download, delete.", no_args_is_help=True
)
alias_app = typer.Typer(help="Aliases: set, rm, history.", no_args_is_help=True)

Pairs = Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")]
IMPORTANCE_SHOWN = 10


@reports_errors
def log(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Model folder or file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name.")],
    param: Pairs = None,
    metric: Pairs = None,
    tag: Pairs = None,
    parent: Annotated[list[str] | None, typer.Option(help="Parent version (repeatable).")] = None,
    alias: Annotated[str | None, typer.Option(help="Commit on this alias and move it.")] = None,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    flavor: Annotated[
        str | None, typer.Option(help="What the files hold (sklearn, torch, …), for a pickle file.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store a model folder or file and register it as the next version."""
    metrics = {k: float(v) for k, v in parse_pairs(metric, what="metric").items()}
    version = yard_of(ctx).log_model(
        path, name=name, flavor=flavor, params=parse_pairs(param, what="param"), metrics=metrics,
        tags=parse_pairs(tag, what="tag"), parents=parent, alias=alias, description=description,
    )  # fmt: skip
    emit_records(version) if as_json else typer.echo(version.ref)


@models_app.command("list")
@reports_errors
def list_models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List every model."""
    models = yard_of(ctx).list_models()
    if as_json:
        emit_records(models)
        return
    rows = [
        (m.name, m.latest_version, ", ".join(f"{a}={v}" for a, v in m.aliases.items()), m.owner)
        for m in models
    ]
    emit_table(["name", "latest", "aliases", "owner"], rows)


@models_app.command("show")
@reports_errors
def show_model(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Show one model with its aliases and gates."""
    yard = yard_of(ctx)
    model = yard.get_model(name)
    if as_json:
        emit_records(model)
        return
    typer.echo(f"{model.name}  (owner {model.owner or '-'}, latest version {model.latest_version})")
    if model.description:
        typer.echo(f"  {model.description}")
    for key, value in model.tags.items():
        typer.echo(f"  tag {key}={value}")
    for alias, number in model.aliases.items():
        typer.echo(f"  @{alias} -> {model.name}:{number}")
    for gate in yard.gates(name):
        typer.echo(f"  gate {gate.id[:8]}: {gate.kind} {gate.config} before {gate.to_state.value}")


@models_app.command("update")
@reports_errors
def update_model(
    ctx: typer.Context,
    name: str,
    description: Annotated[
        str | None, typer.Option(help="What the model is for; an empty value clears it.")
    ] = None,
    tag: Pairs = None,
    delete_tag: Annotated[
        list[str] | None, typer.Option(help="Tag key to remove (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change the description and tags of a model itself (its versions keep theirs)."""
    model = yard_of(ctx).update_model(
        name,
        description=description,
        tags=parse_pairs(tag, what="tag"),
        delete_tags=delete_tag or (),
    )
    emit_records(model) if as_json else typer.echo(model.name)


@models_app.command("delete")
@reports_errors
def delete_model(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a model with all its versions; print the bytes only they used (what
    `modelyard store gc --delete` then frees)."""
    if not yes:
        typer.confirm(f"delete model {name} and all its versions?", abort=True)
    _deleted(name, yard_of(ctx).delete_model(name), whose="its versions", as_json=as_json)


def _version_rows(versions: list[ModelVersion]) -> list[tuple[object, ...]]:
    return [
        (
            v.ref,
            v.state.value,
            ", ".join(f"{k}={value:g}" for k, value in v.metrics.items()),
            ", ".join(f"{k}={value}" for k, value in v.tags.items()),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
        )
        for v in versions
    ]


VERSION_HEADERS = ["version", "state", "metrics", "tags", "created"]


@versions_app.command("list")
@reports_errors
def list_versions(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """List a model's versions, newest first."""
    versions = yard_of(ctx).list_versions(name)
    emit_records(versions) if as_json else emit_table(VERSION_HEADERS, _version_rows(versions))


@versions_app.command("show")
@reports_errors
def show_version(ctx: typer.Context, ref: str, as_json: JsonFlag = False) -> None:
    """Show one version (NAME, NAME:N, NAME@ALIAS, NAME@ALIAS~N), with the global feature
    importance computed at registration when there is one."""
    from modelyard.explain import stored_importance

    yard = yard_of(ctx)
    version = yard.get_version(ref)
    importance = stored_importance(yard, version)
    if as_json:
        record = version.model_dump(mode="json")
        if importance is not None:
            record["importance"] = importance.model_dump(mode="json")
        emit_json(record)
        return
    fields = version.model_dump(mode="json", exclude={"params", "metrics", "tags", "signature"})
    for key, value in fields.items():
        typer.echo(f"{key:>16}: {value}")
    for section in ("params", "metrics", "tags"):
        for key, value in getattr(version, section).items():
            typer.echo(f"{section + '.' + key:>16}: {value}")
    if importance is not None:
        typer.echo(
            f"{'importance':>16}: mean |contribution| to the {importance.output} "
            f"({importance.explainer} explainer, {importance.rows} reference rows)"
        )
        ranked = importance.ranked(IMPORTANCE_SHOWN)
        width = max(len(name) for name, _ in ranked)
        for name, value in ranked:
            typer.echo(f"{'':>16}  {name:<{width}}  {value:.4g}")
        if len(importance.features) > IMPORTANCE_SHOWN:
            typer.echo(f"{'':>16}  … and {len(importance.features) - IMPORTANCE_SHOWN} more")


@versions_app.command("search")
@reports_errors
def search_versions(
    ctx: typer.Context,
    filter: Annotated[
        str, typer.Argument(help="e.g. \"metrics.auc >= 0.9 and tags.team = 'risk'\"")
    ] = "",
    order_by: Annotated[str | None, typer.Option(help="e.g. 'metrics.auc desc, created'.")] = None,
    limit: Annotated[int, typer.Option(help="Versions per page.")] = 100,
    page_token: Annotated[str | None, typer.Option(help="From the previous page.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search versions with the filter language."""
    page = yard_of(ctx).search_versions(
        filter or None, order_by=order_by, limit=limit, page_token=page_token
    )
    if as_json:
        emit_records(page)
        return
    emit_table(VERSION_HEADERS, _version_rows(page.versions))
    if page.next_page_token:
        typer.echo(f"more: --page-token {page.next_page_token}")


@versions_app.command("diff")
@reports_errors
def diff_versions(ctx: typer.Context, a: str, b: str, as_json: JsonFlag = False) -> None:
    """Compare two versions: params, metrics, tags, signature, files and tensors."""
    diff = yard_of(ctx).diff(a, b)
    if as_json:
        emit_records(diff)
        return
    rows: list[tuple[object, ...]] = []
    for section in ("params", "metrics", "tags", "model"):
        rows += [(f"{section}.{c.key}", c.a, c.b) for c in getattr(diff, section)]
    if diff.signature_changed:
        rows.append(("signature", "…", "changed"))
    rows += [(f"file {path}", "-", "added") for path in diff.files_added]
    rows += [(f"file {path}", "removed", "-") for path in diff.files_removed]
    for change in diff.files_changed:
        detail = f"{change.changed_bytes} bytes differ"
        if change.tensors_changed:
            detail += f"; {len(change.tensors_changed)} tensors changed"
        rows.append((f"file {change.path}", change.size_a, detail))
    if not rows:
        typer.echo(f"{diff.a} and {diff.b} are identical")
        return
    emit_table(["what", diff.a, diff.b], rows)
    if diff.tensors:
        typer.echo("")
        emit_table(
            ["tensor", "change", "shape", "L2", "max abs", "changed"],
            [_tensor_row(change) for change in diff.tensors],
        )


def _tensor_row(change: TensorChange) -> tuple[object, ...]:
    shape: object = change.shape_b if change.shape_b is not None else change.shape_a
    if change.status == "shape-changed":
        shape = f"{change.shape_a} -> {change.shape_b}"
    numbers = (
        ("-", "-", "-")
        if change.l2 is None
        else (f"{change.l2:.4g}", f"{change.max_abs:.4g}", f"{change.fraction:.1%}")
    )
    return (f"{change.file}:{change.name}", change.status, shape, *numbers)


@versions_app.command("merge")
@reports_errors
def merge_versions(
    ctx: typer.Context,
    a: str,
    b: str,
    weights: Annotated[
        str, typer.Option(help="How much of A and of B, as 'WA,WB' summing to 1.")
    ] = "0.5,0.5",
    alias: Annotated[str | None, typer.Option(help="Point this alias at the result.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Average the weights of two versions into a new one whose parents are both."""
    try:
        wa, wb = (float(part) for part in weights.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected two numbers such as 0.5,0.5, got {weights!r}") from None
    version = yard_of(ctx).merge(a, b, weights=(wa, wb), alias=alias)
    emit_records(version) if as_json else typer.echo(version.ref)


@versions_app.command("download")
@reports_errors
def download_version(
    ctx: typer.Context,
    ref: str,
    path: Annotated[Path, typer.Argument(help="Folder to create (absent or empty).")],
) -> None:
    """Fetch a version's files, verified byte for byte."""
    yard = yard_of(ctx)
    version = yard.get_version(ref)
    yard.download(version.ref, path)
    typer.echo(f"downloaded {version.ref} to {path}")


@versions_app.command("delete")
@reports_errors
def delete_version(ctx: typer.Context, ref: str, as_json: JsonFlag = False) -> None:
    """Delete a version that no alias points at; print the bytes only it used (what
    `modelyard store gc --delete` then frees)."""
    _deleted(ref, yard_of(ctx).delete_version(ref), whose="it", as_json=as_json)


def _deleted(what: str, freed: UniqueBytes | None, *, whose: str, as_json: bool) -> None:
    """What a deletion left for gc; `freed` is None through a server (its store, its gc)."""
    if as_json:
        blobs, size = (None, None) if freed is None else (freed.blobs, freed.size)
        emit_json({"deleted": what, "unique_blobs": blobs, "unique_bytes": size})
    elif freed is None:
        typer.echo(f"deleted {what}; `modelyard store gc --delete` on the server frees its bytes")
    elif freed.blobs == 0:
        typer.echo(f"deleted {what}; every blob {whose} used is shared, so gc frees nothing")
    else:
        typer.echo(
            f"deleted {what}; {human_bytes(freed.size)} in {freed.blobs} "
            f"blob{'s' if freed.blobs != 1 else ''} only {whose} used, freed by "
            "`modelyard store gc --delete`"
        )


@alias_app.command("set")
@reports_errors
def set_alias(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="NAME@ALIAS to move.")],
    ref: Annotated[str, typer.Argument(help="Version to point at, e.g. fraud:3.")],
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
) -> None:
    """Point an alias at a version."""
    name, alias = _split_alias(target)
    version = yard_of(ctx).set_alias(name, alias, ref, reason=reason)
    typer.echo(f"{name}@{alias} -> {version.ref}")


@alias_app.command("rm")
@reports_errors
def remove_alias(
    ctx: typer.Context, target: Annotated[str, typer.Argument(help="NAME@ALIAS.")]
) -> None:
    """Delete an alias."""
    name, alias = _split_alias(target)
    yard_of(ctx).delete_alias(name, alias)
    typer.echo(f"removed {name}@{alias}")


@alias_app.command("history")
@reports_errors
def alias_history(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="NAME or NAME@ALIAS.")],
    as_json: JsonFlag = False,
) -> None:
    """Show every move of a model's aliases, newest first."""
    name, _, alias = target.partition("@")
    events = yard_of(ctx).alias_history(name, alias or None)
    if as_json:
        emit_records(events)
        return
    rows = [
        (e.at.strftime("%Y-%m-%d %H:%M:%S"), f"@{e.alias}", e.previous or "-", e.version or "-",
         e.actor, e.reason)
        for e in events
    ]  # fmt: skip
    emit_table(["when", "alias", "from", "to", "who", "reason"], rows)


def _split_alias(target: str) -> tuple[str, str]:
    from modelyard.errors import InvalidReference

    name, sep, alias = target.partition("@")
    if not sep or not name or not alias:
        raise InvalidReference(target, expected="NAME@ALIAS")
    return name, alias
