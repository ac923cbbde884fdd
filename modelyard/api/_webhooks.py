"""Registry webhook routes (admin only), and the dispatcher a registry server runs in the
background to send what the registry's changes queued."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from modelyard.api._acting import Caller
from modelyard.api._responses import fast_json
from modelyard.errors import ModelyardError
from modelyard.registry import Database, Delivery, NewWebhook, Webhook, Webhooks, has_due
from modelyard.security import EVERY_MODEL, Role
from modelyard.settings import Settings

log = logging.getLogger("modelyard.webhooks")


class WebhookCreate(BaseModel):
    """A new subscription: where to, which models, which events (all when omitted)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    events: list[str] | None = Field(default=None, max_length=16)
    models: str = Field(default=EVERY_MODEL, max_length=255)
    description: str = Field(default="", max_length=1000)


def webhook_routes(settings: Settings, acting: Any) -> APIRouter:
    """Create, list and delete subscriptions; list deliveries, redeliver, ping (admin role on
    every model: a webhook sees events of many models)."""
    router = APIRouter(tags=["webhooks"])

    def hooks(caller: Caller) -> Webhooks:
        caller.need(Role.ADMIN)
        return Webhooks(caller.registry.database, actor=caller.principal.name,
                        allowed=settings.registry_webhooks)  # fmt: skip

    @router.post("/webhooks", status_code=201)
    @fast_json(201)
    def create_webhook(new: WebhookCreate, caller: Caller = acting) -> NewWebhook:
        return hooks(caller).create(
            new.url, events=new.events, models=new.models, description=new.description
        )

    @router.get("/webhooks")
    @fast_json()
    def list_webhooks(caller: Caller = acting) -> list[Webhook]:
        return hooks(caller).subscriptions()

    @router.delete("/webhooks/{webhook_id}", status_code=204)
    def delete_webhook(webhook_id: str, caller: Caller = acting) -> Response:
        hooks(caller).delete(webhook_id)
        return Response(status_code=204)

    @router.get("/webhook-deliveries")
    @fast_json()
    def deliveries(
        webhook_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        caller: Caller = acting,
    ) -> list[Delivery]:
        return hooks(caller).deliveries(webhook_id=webhook_id, status=status, limit=limit)

    @router.post("/webhook-deliveries/{delivery_id}/redeliver", status_code=201)
    @fast_json(201)
    def redeliver(delivery_id: str, caller: Caller = acting) -> Delivery:
        return hooks(caller).redeliver(delivery_id)

    @router.post("/webhooks/{webhook_id}/ping")
    @fast_json()
    def ping(webhook_id: str, caller: Caller = acting) -> Delivery:
        return hooks(caller).ping(webhook_id)

    return router


class WebhookDispatcher:
    """A thread that sends due webhook deliveries every `interval` seconds (a cheap read when
    none is due); several servers on one database share the work through claims.

    >>> dispatcher = WebhookDispatcher(lambda: registry.database).start()
    >>> dispatcher.stop()
    """

    def __init__(self, database: Callable[[], Database], *, interval: float = 1.0) -> None:
        self.database = database
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> WebhookDispatcher:
        """Start sending in the background."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the delivery in flight (at most one POST's timeout)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                database = self.database()
                if has_due(database):
                    Webhooks(database, actor="modelyard").deliver(limit=20)
            except ModelyardError as error:  # the database away for a moment: try again
                log.warning("webhook delivery: %s", error)
            except Exception:  # a bug must not stop deliveries for good
                log.exception("webhook delivery failed")
