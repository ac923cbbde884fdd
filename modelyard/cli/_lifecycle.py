"""`modelyard promote|approve|rollback|lineage|gate|audit|db …`: lifecycle, history and upkeep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._context import JsonFlag, emit_records, parse_pairs, settings_of, yard_of
from modelyard.cli._output import emit_json, emit_table, reports_errors

if TYPE_CHECKING:
    from modelyard.registry import ModelVersion

audit_app = typer.Typer(help="Audit log: log, verify, head.", no_args_is_help=True)
db_app = typer.Typer(help="Registry database: upgrade, pending.", no_args_is_help=True)
gate_app = typer.Typer(help="Promotion gates: add, list, rm.", no_args_is_help=True)


@reports_errors
def promote(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version, e.g. fraud:3.")],
    state: Annotated[str, typer.Argument(help="validated, staging, production or archived.")],
    comment: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Move a version to a lifecycle state, checking the model's gates."""
    version = yard_of(ctx).transition(ref, state, comment=comment)
    if as_json:
        emit_records(version)
    else:
        typer.echo(f"{version.ref} is now {version.state.value}")


@reports_errors
def approve(
    ctx: typer.Context,
    ref: str,
    comment: Annotated[str, typer.Option(help="Note kept with the approval.")] = "",
) -> None:
    """Approve a version (as someone other than its creator)."""
    yard_of(ctx).approve(ref, comment=comment)
    typer.echo(f"approved {ref}")


@reports_errors
def rollback(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="NAME or NAME@ALIAS (default alias: production).")],
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Move an alias back to the version it pointed at before."""
    name, _, alias = target.partition("@")
    version = yard_of(ctx).rollback(name, alias or "production", reason=reason)
    if as_json:
        emit_records(version)
    else:
        typer.echo(f"{name}@{alias or 'production'} -> {version.ref}")


@reports_errors
def lineage(ctx: typer.Context, ref: str, as_json: JsonFlag = False) -> None:
    """Show a version's ancestors and descendants."""
    yard = yard_of(ctx)
    graph = yard.lineage(ref)
    if as_json:
        emit_records(graph)
        return
    typer.echo(f"{graph.root}")
    typer.echo(f"  ancestors:   {', '.join(graph.ancestors) or '-'}")
    typer.echo(f"  descendants: {', '.join(graph.descendants) or '-'}")
    for edge in graph.edges:
        step = _step_summary(yard.get_version(edge.child)) if edge.relation != "parent" else ""
        typer.echo(f"  {edge.parent} -> {edge.child} ({edge.relation}{step})")


def _step_summary(version: ModelVersion) -> str:
    """`: dtype=int8; 3.9x smaller, 2.1x faster at batch 64, accuracy -0.2%` for a version an
    optimization step made (its settings and measured trade-off), else nothing."""
    settings = [f"{key[9:]}={value}" for key, value in version.params.items()
                if key.startswith("optimize.") and key != "optimize.step"]  # fmt: skip
    if "optimize.size_ratio" not in version.metrics:
        return ""
    metrics = version.metrics
    change = metrics.get("optimize.metric_change", 0.0)
    size = _times(metrics["optimize.size_ratio"], "smaller", "larger")
    speed = _times(metrics.get("optimize.speedup_batch64", 1.0), "faster", "slower")
    return f": {', '.join(settings)}; {size}, {speed} at batch 64, metric {change:+.2%}"


def _times(ratio: float, better: str, worse: str) -> str:
    """3.4 -> '3.40x faster'; 0.29 -> '3.45x slower' (never '0.29x faster')."""
    return f"{ratio:.2f}x {better}" if ratio >= 1 else f"{1 / max(ratio, 1e-12):.2f}x {worse}"


@gate_app.command("add")
@reports_errors
def add_gate(
    ctx: typer.Context,
    name: str,
    kind: Annotated[
        str,
        typer.Argument(
            help="metric, tag, signature (inputs and outputs declared), signed (a verified "
            "signature) or approval."
        ),
    ],
    config: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE settings.")] = None,
    to_state: Annotated[str, typer.Option(help="State the gate guards.")] = "production",
) -> None:
    """Add a gate, e.g. `gate add fraud metric metric=auc op='>=' value=0.9`."""
    settings: dict[str, object] = dict(parse_pairs(config, what="gate setting"))
    for key in ("value", "count"):
        if key in settings:
            number = float(str(settings[key]))
            settings[key] = int(number) if key == "count" else number
    gate = yard_of(ctx).add_gate(name, kind, to_state=to_state, **settings)
    typer.echo(f"gate {gate.id} added")


@gate_app.command("list")
@reports_errors
def list_gates(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """List a model's gates."""
    gates = yard_of(ctx).gates(name)
    if as_json:
        emit_records(gates)
        return
    emit_table(
        ["id", "before", "kind", "settings"],
        [(g.id, g.to_state.value, g.kind, g.config) for g in gates],
    )


@gate_app.command("rm")
@reports_errors
def remove_gate(ctx: typer.Context, name: str, gate_id: str) -> None:
    """Remove a gate by id."""
    yard_of(ctx).remove_gate(name, gate_id)
    typer.echo(f"removed gate {gate_id}")


@audit_app.command("log")
@reports_errors
def audit_log(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Argument(help="Model or version to narrow to.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many events.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the audit trail, oldest first."""
    events = yard_of(ctx).audit_log(target=target, limit=limit)
    if as_json:
        emit_records(events)
        return
    rows = [
        (e.seq, e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.target, e.after or "")
        for e in events
    ]
    emit_table(["seq", "when", "who", "action", "target", "after"], rows)


@audit_app.command("verify")
@reports_errors
def audit_verify(
    ctx: typer.Context,
    head: Annotated[
        str | None,
        typer.Option(
            help="A head recorded earlier with `modelyard audit head` (SEQ:HASH): also fail when "
            "the chain no longer reaches it unchanged (events deleted or rewritten)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Walk the audit hash chain; exit 1 naming the first event that does not match."""
    check = yard_of(ctx).verify_audit(head=head)
    if as_json:
        emit_json({"ok": check.ok, "checked": check.checked, "bad_seq": check.bad_seq,
                   "reason": check.reason, "unkeyed": check.unkeyed})  # fmt: skip
    elif check.ok:
        typer.echo(f"audit chain intact: {check.checked} events")
    else:
        typer.echo(f"audit chain broken at event {check.bad_seq}: {check.reason}", err=True)
    if check.unkeyed and not as_json:
        typer.echo(
            f"note: the first {check.unkeyed} events were written before the chain was keyed; "
            "only a head recorded earlier (--head) vouches for them",
            err=True,
        )
    if not check.ok:
        raise typer.Exit(1)


@audit_app.command("head")
@reports_errors
def audit_head(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print where the audit chain ends (SEQ:HASH). Keep it outside the registry's database;
    `modelyard audit verify --head SEQ:HASH` later shows whether events were deleted since."""
    head = yard_of(ctx).audit_head()
    if as_json:
        emit_json({"seq": head.seq, "hash": head.hash})
    else:
        typer.echo(str(head))


@db_app.command("upgrade")
@reports_errors
def db_upgrade(ctx: typer.Context) -> None:
    """Apply pending schema migrations to the registry database."""
    from modelyard.registry import Database

    database = Database(settings_of(ctx).database_url)
    database.open()
    try:
        applied = database.migrate()
    finally:
        database.close()
    typer.echo(f"applied {', '.join(applied)}" if applied else "already up to date")


@db_app.command("pending")
@reports_errors
def db_pending(ctx: typer.Context) -> None:
    """List migrations not yet applied (reads only)."""
    from modelyard.registry import Database

    database = Database(settings_of(ctx).database_url)
    database.open()
    try:
        pending = database.pending()
    finally:
        database.close()
    typer.echo("\n".join(pending) if pending else "none")
