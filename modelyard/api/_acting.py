"""Who a request acts as, for the FastAPI routes: `Caller`, resolved by a dependency.

The dependency answers from the token cache on the event loop and goes to a thread only on a
miss (a database lookup or a JWKS fetch). Each route then states the role it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from modelyard.api._access import Access
from modelyard.registry import Reference, Registry
from modelyard.security import Principal, Role

_BEARER = Depends(HTTPBearer(auto_error=False, description="An API token (myd_…) or an OIDC token"))
"""Declares bearer auth in the OpenAPI document; `Access` reads the header itself."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of one request, and the checks routes ask of it."""

    principal: Principal
    access: Access

    @property
    def registry(self) -> Registry:
        """The registry, recording this principal as the actor."""
        return self.access.registry(self.principal)

    def need(self, role: Role, model: str | None = None) -> Caller:
        """Go on only if the principal holds `role` on `model` (on every model when None)."""
        self.access.require(self.principal, role, model)
        return self

    def need_ref(self, role: Role, ref: str) -> Caller:
        """`need` on the model a version reference names."""
        return self.need(role, Reference.parse(ref).name)

    def need_somewhere(self, role: Role) -> Caller:
        """Go on only if the principal holds `role` on at least one model."""
        self.access.require_somewhere(self.principal, role)
        return self

    def may_read(self, model: str) -> bool:
        """Whether the principal may read `model` (to filter lists)."""
        return self.access.may(self.principal, Role.READER, model)

    def reads_everything(self) -> bool:
        """Whether the principal may read every model (lists need no filtering)."""
        return self.access.may(self.principal, Role.READER)


def caller_dependency(access: Access) -> Any:
    """A FastAPI dependency giving each request's `Caller` (declared as bearer auth in the
    OpenAPI document): `def route(caller: Caller = acting)`."""

    async def caller(request: Request, _bearer: Any = _BEARER) -> Caller:
        credentials = _credentials(request)
        principal = access.cached(**credentials)
        if principal is None:
            principal = await run_in_threadpool(access.authenticate, **credentials)
        return Caller(principal, access)

    return Depends(caller)


def _credentials(request: Request) -> dict[str, Any]:
    client = request.client.host if request.client else None
    return {
        "authorization": request.headers.get("authorization"),
        "client": client,
        "proxy_user": request.headers.get("x-modelyard-user"),
    }
