"""Who a request acts as: the `X-Modelyard-User` header, else the server's own user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from modelyard._yard import Yard
from modelyard.registry import Registry

User = Annotated[str | None, Header(alias="X-Modelyard-User")]


def acting_registry(yard: Yard, user: str | None) -> Registry:
    """The server's registry, recording `user` as the actor (tokens will replace the header)."""
    shared = yard.local_registry()
    return Registry(shared.database, actor=user or shared.actor)
