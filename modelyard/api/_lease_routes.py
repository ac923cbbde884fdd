"""Lease routes: take, renew and release a named lease, so that one of several `modelyard serve`
replicas (`Yard(url=…)`) evaluates the alert rules they share.

A lease belongs to no single model: taking one needs the editor role on some model, the same a
replica needs to roll an alias back when a rule fires.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from modelyard.api._acting import Caller
from modelyard.api._responses import fast_json
from modelyard.registry import Lease
from modelyard.security import Role

MAX_SECONDS = 86_400.0


class LeaseRequest(BaseModel):
    """Who takes (or renews) the lease, and for how long."""

    model_config = ConfigDict(extra="forbid")

    holder: str = Field(min_length=1, max_length=255)
    seconds: float = Field(gt=0, le=MAX_SECONDS)


Holder = Annotated[str, Query(min_length=1, max_length=255, description="who holds the lease")]


def lease_routes(acting: Any) -> APIRouter:
    """`POST /leases/{name}` takes or renews; `DELETE /leases/{name}?holder=` releases."""
    router = APIRouter(tags=["leases"])

    @router.post("/leases/{name:path}")
    @fast_json()
    def acquire_lease(name: str, request: LeaseRequest, caller: Caller = acting) -> Lease:
        """The lease as it stands after: `holder` is the caller's when taken or renewed."""
        registry = caller.need_somewhere(Role.EDITOR).registry
        return registry.acquire_lease(name, holder=request.holder, seconds=request.seconds)

    @router.delete("/leases/{name:path}", status_code=204)
    def release_lease(name: str, holder: Holder, caller: Caller = acting) -> Response:
        """Give the lease up if `holder` holds it (204 either way)."""
        caller.need_somewhere(Role.EDITOR).registry.release_lease(name, holder=holder)
        return Response(status_code=204)

    return router
