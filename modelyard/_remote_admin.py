"""The admin parts of a `modelyard server` over HTTP: tokens and grants, registry webhooks.

Each mirrors its embedded twin (`Principals`, `Webhooks`) method for method, and talks through
an `HttpRegistry`'s session, so errors arrive as the same typed `ModelyardError`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelyard.registry import ApiToken, Delivery, IssuedToken, NewWebhook, RoleGrant, Webhook

if TYPE_CHECKING:
    from modelyard._remote import HttpRegistry


class HttpPrincipals:
    """The tokens and grants of a `modelyard server` (admin only), with `Principals`' methods."""

    def __init__(self, registry: HttpRegistry) -> None:
        self.registry = registry

    def create_token(
        self, *, user: str, expires_in: timedelta | None = None, description: str = ""
    ) -> IssuedToken:
        seconds = int(expires_in.total_seconds()) if expires_in else None
        body = {"user": user, "expires_in_seconds": seconds, "description": description}
        return self.registry._one(IssuedToken, "POST", "/tokens", json=body)

    def tokens(self) -> list[ApiToken]:
        return self.registry._many(ApiToken, "GET", "/tokens")

    def revoke_token(self, token_id: str) -> ApiToken:
        return self.registry._one(ApiToken, "DELETE", f"/tokens/{quote(token_id, safe='')}")

    def grant(self, subject: str, role: str, *, models: str = "*", group: bool = False
              ) -> RoleGrant:  # fmt: skip
        body = {"subject": subject, "role": str(role), "models": models, "group": group}
        return self.registry._one(RoleGrant, "POST", "/grants", json=body)

    def grants(self) -> list[RoleGrant]:
        return self.registry._many(RoleGrant, "GET", "/grants")

    def revoke_grant(self, subject: str, role: str, *, models: str = "*", group: bool = False
                     ) -> None:  # fmt: skip
        params = {"subject": subject, "role": str(role), "models": models,
                  "group": str(group).lower()}  # fmt: skip
        self.registry._send("DELETE", "/grants", params=params)


class HttpWebhooks:
    """The registry webhooks of a `modelyard server` (admin only), with `Webhooks`' methods;
    the server itself sends the deliveries."""

    def __init__(self, registry: HttpRegistry) -> None:
        self.registry = registry

    def create(
        self,
        url: str,
        *,
        events: Sequence[str] | None = None,
        models: str = "*",
        description: str = "",
    ) -> NewWebhook:
        body = {"url": url, "events": None if events is None else list(events),
                "models": models, "description": description}  # fmt: skip
        return self.registry._one(NewWebhook, "POST", "/webhooks", json=body)

    def subscriptions(self) -> list[Webhook]:
        return self.registry._many(Webhook, "GET", "/webhooks")

    def delete(self, webhook_id: str) -> None:
        self.registry._send("DELETE", f"/webhooks/{quote(webhook_id, safe='')}")

    def deliveries(
        self, *, webhook_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        params: dict[str, Any] = {"limit": limit}
        params |= {"webhook_id": webhook_id} if webhook_id else {}
        params |= {"status": status} if status else {}
        return self.registry._many(Delivery, "GET", "/webhook-deliveries", params=params)

    def redeliver(self, delivery_id: str) -> Delivery:
        path = f"/webhook-deliveries/{quote(delivery_id, safe='')}/redeliver"
        return self.registry._one(Delivery, "POST", path)

    def ping(self, webhook_id: str) -> Delivery:
        return self.registry._one(Delivery, "POST", f"/webhooks/{quote(webhook_id, safe='')}/ping")
