"""`modelyard token create|list|revoke` and `modelyard role grant|list|revoke`.

They change the embedded registry directly (the operator bootstraps the first admin there, no
token needed), or a `modelyard server` when MODELYARD_URL is set (the admin role needed).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._context import JsonFlag, emit_records, settings_of, yard_of
from modelyard.cli._output import emit_table, reports_errors
from modelyard.security import EVERY_MODEL, parse_duration

if TYPE_CHECKING:
    from modelyard._remote_admin import HttpPrincipals
    from modelyard.registry import Principals

token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
role_app = typer.Typer(help="Roles: grant, list, revoke.", no_args_is_help=True)

Models = Annotated[
    str,
    typer.Option("--models", help="Model names this applies to: a name or a pattern (fraud-*)."),
]
Group = Annotated[bool, typer.Option("--group", help="SUBJECT is an OIDC group, not a user.")]
ROLES = "reader, editor, approver or admin"


def principals_of(ctx: typer.Context) -> Principals | HttpPrincipals:
    """The tokens and grants of the server MODELYARD_URL names, or of the local registry."""
    from modelyard._remote import HttpRegistry
    from modelyard._remote_admin import HttpPrincipals
    from modelyard.registry import Principals

    yard = yard_of(ctx)
    registry = yard.registry
    if isinstance(registry, HttpRegistry):
        return HttpPrincipals(registry)
    return Principals(registry.database, actor=settings_of(ctx).user)


@token_app.command("create")
@reports_errors
def create_token(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="Who the token acts as.")],
    expires: Annotated[str, typer.Option(help="Lifetime: 30d, 12h, 2w, … or `never`.")] = "90d",
    description: Annotated[str, typer.Option(help="What the token is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create an API token; its secret is printed this once (only a hash is kept)."""
    issued = principals_of(ctx).create_token(
        user=user, expires_in=parse_duration(expires), description=description
    )
    if as_json:
        emit_records(issued)
        return
    typer.echo(issued.secret)
    expiry = issued.token.expires_at.isoformat() if issued.token.expires_at else "never"
    typer.echo(
        f"token {issued.token.id} for {user}, expires {expiry}; the secret above is shown only "
        "now: pass it as MODELYARD_TOKEN",
        err=True,
    )


@token_app.command("list")
@reports_errors
def list_tokens(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List tokens (never their secrets), newest first."""
    tokens = principals_of(ctx).tokens()
    if as_json:
        emit_records(tokens)
        return
    rows = [
        (t.id, t.user, _when(t.expires_at) or "never", "revoked" if t.revoked_at else "",
         t.description)
        for t in tokens
    ]  # fmt: skip
    emit_table(["id", "user", "expires", "status", "description"], rows)


@token_app.command("revoke")
@reports_errors
def revoke_token(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a token for good (a server's cache forgets it within MODELYARD_AUTH_CACHE_SECONDS)."""
    revoked = principals_of(ctx).revoke_token(token_id)
    typer.echo(f"revoked token {revoked.id} of {revoked.user}")


@role_app.command("grant")
@reports_errors
def grant(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="A user (or, with --group, a group).")],
    role: Annotated[str, typer.Argument(help=ROLES)],
    models: Models = EVERY_MODEL,
    group: Group = False,
) -> None:
    """Give a role to a user or a group, on every model or on those matching --models."""
    granted = principals_of(ctx).grant(subject, role, models=models, group=group)
    kind = "group" if granted.group else "user"
    typer.echo(f"{kind} {granted.subject} is {granted.role} on {granted.models}")


@role_app.command("list")
@reports_errors
def list_grants(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the grants."""
    grants = principals_of(ctx).grants()
    if as_json:
        emit_records(grants)
        return
    rows = [(g.subject, "group" if g.group else "user", g.role.value, g.models,
             g.created_by) for g in grants]  # fmt: skip
    emit_table(["subject", "kind", "role", "models", "granted by"], rows)


@role_app.command("revoke")
@reports_errors
def revoke_grant(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="A user (or, with --group, a group).")],
    role: Annotated[str, typer.Argument(help=ROLES)],
    models: Models = EVERY_MODEL,
    group: Group = False,
) -> None:
    """Remove a grant (give the same --models it was granted with)."""
    principals_of(ctx).revoke_grant(subject, role, models=models, group=group)
    typer.echo(f"revoked {role} on {models} from {subject}")


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else ""
