"""Who is looking at a page (`Viewer`), and the narrow seam to the server's access checks.

The UI sits below `api` and never imports it: the registry server hands it its `Access` as a
`Gatekeeper`, the few operations pages need. A page asks the same role the REST route asks
(`viewer.need(Role.EDITOR, name)`), and acts through the same `Registry`, so gates and the
audit log see a click exactly as they see an API call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from modelyard.registry import Reference, Registry
from modelyard.security import Principal, Role


class Gatekeeper(Protocol):
    """The server's authentication and role checks (`modelyard.api`'s `Access` is one)."""

    required: bool
    """Whether requests need a token (auth on)."""

    def authenticate(
        self, authorization: str | None, *, client: str | None, proxy_user: str | None
    ) -> Principal: ...
    def require(self, principal: Principal, role: Role, model: str | None = None) -> None: ...
    def require_somewhere(self, principal: Principal, role: Role) -> None: ...
    def may(self, principal: Principal, role: Role, model: str | None = None) -> bool: ...
    def alias_role(self, alias: str) -> Role: ...
    def transition_role(self, state: str) -> Role: ...
    def registry(self, principal: Principal) -> Registry: ...


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated principal behind one page request, and the checks pages ask of it."""

    principal: Principal
    gatekeeper: Gatekeeper

    @property
    def name(self) -> str:
        """The user's name, as the audit log records it."""
        return self.principal.name

    @property
    def registry(self) -> Registry:
        """The registry, recording this principal as the actor."""
        return self.gatekeeper.registry(self.principal)

    def need(self, role: Role, model: str | None = None) -> Viewer:
        """Go on only if the principal holds `role` on `model` (every model when None)."""
        self.gatekeeper.require(self.principal, role, model)
        return self

    def need_ref(self, role: Role, ref: str) -> Viewer:
        """`need` on the model a version reference names."""
        return self.need(role, Reference.parse(ref).name)

    def need_somewhere(self, role: Role) -> Viewer:
        """Go on only if the principal holds `role` on at least one model."""
        self.gatekeeper.require_somewhere(self.principal, role)
        return self

    def may(self, role: Role, model: str | None = None) -> bool:
        """Whether the principal holds `role` on `model` (to show or hide an action)."""
        return self.gatekeeper.may(self.principal, role, model)
