"""Token and grant routes: who may use the server, and with which roles. Admin only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Response

from modelyard.api import _schemas as body
from modelyard.api._access import Access
from modelyard.api._acting import Caller
from modelyard.api._responses import fast_json
from modelyard.registry import ApiToken, IssuedToken, Principals, RoleGrant
from modelyard.security import EVERY_MODEL, Role


def principal_routes(access: Access, acting: Any) -> APIRouter:
    """Create, list and revoke API tokens and role grants (the admin role on every model)."""
    router = APIRouter(tags=["access"])

    def principals(caller: Caller) -> Principals:
        caller.need(Role.ADMIN)
        return Principals(caller.registry.database, actor=caller.principal.name)

    @router.post("/tokens", status_code=201)
    @fast_json(201)
    def create_token(new: body.TokenCreate, caller: Caller = acting) -> IssuedToken:
        expires = timedelta(seconds=new.expires_in_seconds) if new.expires_in_seconds else None
        return principals(caller).create_token(
            user=new.user, expires_in=expires, description=new.description
        )

    @router.get("/tokens")
    @fast_json()
    def list_tokens(caller: Caller = acting) -> list[ApiToken]:
        return principals(caller).tokens()

    @router.delete("/tokens/{token_id}")
    @fast_json()
    def revoke_token(token_id: str, caller: Caller = acting) -> ApiToken:
        revoked = principals(caller).revoke_token(token_id)
        access.forget()  # at once on this server; others within their cache time
        return revoked

    @router.post("/grants", status_code=201)
    @fast_json(201)
    def grant(new: body.GrantCreate, caller: Caller = acting) -> RoleGrant:
        granted = principals(caller).grant(
            new.subject, new.role, models=new.models, group=new.group
        )
        access.forget()
        return granted

    @router.get("/grants")
    @fast_json()
    def list_grants(caller: Caller = acting) -> list[RoleGrant]:
        return principals(caller).grants()

    @router.delete("/grants", status_code=204)
    def revoke_grant(
        subject: str,
        role: str,
        models: str = EVERY_MODEL,
        group: bool = False,
        caller: Caller = acting,
    ) -> Response:
        principals(caller).revoke_grant(subject, role, models=models, group=group)
        access.forget()
        return Response(status_code=204)

    return router
