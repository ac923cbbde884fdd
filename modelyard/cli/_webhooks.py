"""`modelyard webhook add|list|rm|deliveries|redeliver|test|deliver`: registry webhooks.

They manage the embedded registry directly, or a `modelyard server` when MODELYARD_URL is set
(the admin role needed). A server sends deliveries itself; `deliver` drains them once for an
embedded registry (from cron, or a CI job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._context import JsonFlag, emit_records, settings_of, yard_of
from modelyard.cli._output import emit_table, reports_errors
from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    from modelyard._remote_admin import HttpWebhooks
    from modelyard.registry import Delivery, Webhooks

webhook_app = typer.Typer(
    help="Registry webhooks: POST signed events (version created, alias moved, …) to a URL.",
    no_args_is_help=True,
)
EVENT_NAMES = (
    "version.created, version.state_changed, alias.moved, approval.requested, signature.added"
)


def webhooks_of(ctx: typer.Context) -> Webhooks | HttpWebhooks:
    """The webhooks of the server MODELYARD_URL names, or of the local registry."""
    from modelyard._remote import HttpRegistry
    from modelyard._remote_admin import HttpWebhooks
    from modelyard.registry import Webhooks

    registry = yard_of(ctx).registry
    if isinstance(registry, HttpRegistry):
        return HttpWebhooks(registry)
    settings = settings_of(ctx)
    return Webhooks(registry.database, actor=settings.user, allowed=settings.registry_webhooks)


@webhook_app.command("add")
@reports_errors
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Where to POST; on the registry_webhooks list.")],
    event: Annotated[
        list[str] | None, typer.Option("--event", help=f"Repeatable; default all: {EVENT_NAMES}.")
    ] = None,
    models: Annotated[str, typer.Option(help="A model name or pattern (fraud-*).")] = "*",
    description: Annotated[str, typer.Option(help="What the webhook is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Subscribe URL to registry events; its signing secret is printed this once."""
    made = webhooks_of(ctx).create(
        url, events=event or None, models=models, description=description
    )
    if as_json:
        emit_records(made)
        return
    typer.echo(made.secret)
    typer.echo(
        f"webhook {made.webhook.id} posts {', '.join(made.webhook.events)} of {models} to "
        f"{made.webhook.url}; the secret above is shown only now: receivers check deliveries "
        "with it (modelyard.verify_webhook)",
        err=True,
    )


@webhook_app.command("list")
@reports_errors
def list_webhooks(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List webhooks (never their secrets)."""
    found = webhooks_of(ctx).subscriptions()
    if as_json:
        emit_records(found)
        return
    rows = [(w.id, w.url, w.models, ",".join(w.events), w.description) for w in found]
    emit_table(["id", "url", "models", "events", "description"], rows)


@webhook_app.command("rm")
@reports_errors
def remove(
    ctx: typer.Context, webhook_id: Annotated[str, typer.Argument(help="The webhook's id.")]
) -> None:
    """Delete a webhook with its delivery history."""
    webhooks_of(ctx).delete(webhook_id)
    typer.echo(f"deleted webhook {webhook_id}")


@webhook_app.command("deliveries")
@reports_errors
def deliveries(
    ctx: typer.Context,
    webhook_id: Annotated[
        str | None, typer.Option("--webhook", help="Only this webhook's.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="Only pending, delivered or failed ones.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The delivery history: each event sent, its status and attempts."""
    found = webhooks_of(ctx).deliveries(webhook_id=webhook_id, status=status, limit=limit)
    if as_json:
        emit_records(found)
        return
    emit_table(
        ["id", "webhook", "event", "status", "tries", "last", "created"], [_row(d) for d in found]
    )


@webhook_app.command("redeliver")
@reports_errors
def redeliver(
    ctx: typer.Context, delivery_id: Annotated[str, typer.Argument(help="The delivery's id.")]
) -> None:
    """Queue a delivery's event again (as a new delivery)."""
    again = webhooks_of(ctx).redeliver(delivery_id)
    typer.echo(f"queued delivery {again.id} ({again.event})")


@webhook_app.command("test")
@reports_errors
def test(
    ctx: typer.Context, webhook_id: Annotated[str, typer.Argument(help="The webhook's id.")]
) -> None:
    """Send a `ping` event now and show how it went."""
    sent = webhooks_of(ctx).ping(webhook_id)
    emit_table(["id", "webhook", "event", "status", "tries", "last", "created"], [_row(sent)])
    if sent.status != "delivered":
        raise typer.Exit(1)


@webhook_app.command("deliver")
@reports_errors
def deliver(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="At most this many deliveries.")] = 1000,
) -> None:
    """Send every delivery due now, once (embedded registry; a server does this itself)."""
    hooks = webhooks_of(ctx)
    if not hasattr(hooks, "deliver"):
        raise ConfigurationError(
            "the modelyard server at MODELYARD_URL sends its webhooks itself; `webhook deliver` "
            "is for an embedded registry"
        )
    typer.echo(f"attempted {hooks.deliver(limit=limit)} deliveries")


def _row(delivery: Delivery) -> tuple[str, ...]:
    last = delivery.last_error or (
        str(delivery.last_status_code or "") if delivery.attempts else ""
    )
    created = delivery.created_at.isoformat(timespec="seconds")
    return (delivery.id, delivery.webhook_id, delivery.event, delivery.status,
            str(delivery.attempts), last, created)  # fmt: skip
