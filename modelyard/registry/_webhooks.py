"""Registry webhooks: subscriptions to registry events, and their delivery history.

A subscription names a URL (admitted by the operator's `registry_webhooks` allow-list, checked
and normalised like alert webhooks), a model pattern (`fraud-*`) and the events it wants (see
`EVENTS`). Its signing secret is made on creation and shown that once; the database keeps only
a salt, and the secret is derived from the server secret when a delivery is signed.

Deliveries are written by the changes themselves (`_webhook_outbox`) and sent by the dispatcher
(`_webhook_delivery`): `deliver()` here drains what is due once (cron, embedded setups); a
`modelyard server` does it in the background. Changes to subscriptions are audited under
`@webhooks/<id>`.

    >>> hooks = Webhooks(database, actor="root", allowed=["https://ci.example.com/hooks"])
    >>> made = hooks.create("https://ci.example.com/hooks/deploy", events=["alias.moved"])
    >>> made.secret       # shown once
    'whsec_…'
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Row, delete, insert, select

from modelyard.errors import ConfigurationError, NotFound
from modelyard.registry._audit import append, utc
from modelyard.registry._database import Database
from modelyard.registry._tables import webhook_attempts, webhook_deliveries, webhooks
from modelyard.registry._versions import new_id, now
from modelyard.registry._webhook_delivery import RetryPolicy, deliver_due, webhook_secret
from modelyard.registry._webhook_outbox import EVENTS, PING
from modelyard.registry._webhook_outbox import delivery_id as new_delivery_id
from modelyard.security import EVERY_MODEL, parse_webhook, webhook_url

_PATTERN = re.compile(r"[A-Za-z0-9._*?\[\]!-]{1,255}")
STATUSES = ("pending", "delivered", "failed")


class Webhook(BaseModel):
    """A subscription as listed: never its secret."""

    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    models: str
    events: list[str]
    description: str = ""
    active: bool
    created_by: str
    created_at: datetime


class NewWebhook(BaseModel):
    """A subscription just made, with its signing secret: shown only this once."""

    model_config = ConfigDict(frozen=True)

    webhook: Webhook
    secret: str


class Attempt(BaseModel):
    """One try at a delivery: the answer's status code (None: no answer), a short error."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    status_code: int | None
    error: str
    duration_ms: float


class Delivery(BaseModel):
    """One event sent (or to be sent) to one subscription, with its attempts, oldest first."""

    model_config = ConfigDict(frozen=True)

    id: str
    webhook_id: str
    event: str
    audit_seq: int | None
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str
    created_at: datetime
    finished_at: datetime | None
    history: list[Attempt] = []


class Webhooks:
    """Manage subscriptions, read the delivery history, redeliver, ping and drain: the admin's
    tools (the server's routes check the admin role before using this)."""

    def __init__(
        self,
        database: Database,
        *,
        actor: str,
        allowed: Sequence[str] = (),
        policy: RetryPolicy | None = None,
    ) -> None:
        self.database = database
        self.actor = actor
        self.allowed = list(allowed)
        self.policy = policy or RetryPolicy()

    def create(
        self,
        url: str,
        *,
        events: Sequence[str] | None = None,
        models: str = EVERY_MODEL,
        description: str = "",
    ) -> NewWebhook:
        """Subscribe `url` to `events` (all when None) of the models `models` matches.

        >>> hooks.create("https://ci.example.com/hooks", events=["alias.moved"], models="fraud*")
        """
        target = self._admitted(url)
        chosen = _events(events)
        if not _PATTERN.fullmatch(models):
            raise ConfigurationError(
                f"models {models!r} is not a model name or pattern (letters, digits, . _ - and "
                "the wildcards * ? [ ] !)"
            )
        webhook_id, salt = new_id(), secrets.token_hex(16)
        secret = webhook_secret(self.database.webhook_key, webhook_id=webhook_id, salt=salt)
        row = {"id": webhook_id, "url": target, "models": models, "events": chosen,
               "secret_salt": salt, "description": description, "active": True,
               "created_by": self.actor, "created_at": now()}  # fmt: skip
        with self.database.write() as connection:
            connection.execute(insert(webhooks).values(row))
            append(connection, actor=self.actor, action="webhook.create",
                   target=f"@webhooks/{webhook_id}",
                   after={"host": _host(target), "models": models, "events": chosen})  # fmt: skip
        return NewWebhook(webhook=_webhook(row), secret=secret)

    def subscriptions(self) -> list[Webhook]:
        """Every subscription, oldest first."""
        with self.database.read() as connection:
            rows = connection.execute(
                select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)
            ).all()
        return [_webhook(row._mapping) for row in rows]

    def delete(self, webhook_id: str) -> None:
        """Remove a subscription with its delivery history."""
        with self.database.write() as connection:
            row = _one_webhook(connection, webhook_id)
            connection.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
            append(connection, actor=self.actor, action="webhook.delete",
                   target=f"@webhooks/{webhook_id}", before={"host": _host(row.url)})  # fmt: skip

    def deliveries(
        self, *, webhook_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        """Deliveries, newest first, each with its attempts; optionally one subscription's, or
        only those in `status` (pending, delivered, failed)."""
        if status is not None and status not in STATUSES:
            raise ConfigurationError(f"status {status!r}: use one of {', '.join(STATUSES)}")
        query = select(webhook_deliveries).order_by(
            webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id
        )
        if webhook_id is not None:
            query = query.where(webhook_deliveries.c.webhook_id == webhook_id)
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status)
        with self.database.read() as connection:
            rows = connection.execute(query.limit(max(1, min(limit, 1000)))).all()
            return [_delivery(connection, row) for row in rows]

    def delivery(self, delivery_id: str) -> Delivery:
        """One delivery with its attempts."""
        with self.database.read() as connection:
            return _delivery(connection, _one_delivery(connection, delivery_id))

    def redeliver(self, delivery_id: str) -> Delivery:
        """Queue the payload of a delivery again, as a new delivery (a new id; the payload's
        `audit_seq` lets receivers notice a repeat)."""
        with self.database.write() as connection:
            old = _one_delivery(connection, delivery_id)
            copy = _new_delivery(old.webhook_id, old.event, old.payload, old.audit_seq)
            connection.execute(insert(webhook_deliveries).values(copy))
            return _delivery(connection, _one_delivery(connection, copy["id"]))

    def ping(self, webhook_id: str) -> Delivery:
        """Send a `ping` event to a subscription now; the delivery as it went."""
        with self.database.write() as connection:
            _one_webhook(connection, webhook_id)
            payload = {"event": PING, "webhook_id": webhook_id, "actor": self.actor,
                       "at": now().isoformat()}  # fmt: skip
            ping = _new_delivery(webhook_id, PING, payload, None)
            connection.execute(insert(webhook_deliveries).values(ping))
        deliver_due(self.database, policy=self.policy, only=[ping["id"]], limit=1)
        return self.delivery(ping["id"])

    def deliver(self, *, at: datetime | None = None, limit: int = 100) -> int:
        """Send every delivery due (at `at`, default now), up to `limit`; return how many were
        attempted. Run it from cron for an embedded registry; a server runs it itself."""
        attempted = 0
        while attempted < limit:
            done = deliver_due(self.database, policy=self.policy, at=at,
                               limit=min(20, limit - attempted))  # fmt: skip
            if not done:
                break
            attempted += done
        return attempted

    def _admitted(self, url: str) -> str:
        if not self.allowed:
            raise ConfigurationError(
                "no registry webhook may be created: the operator's allow-list is empty; set "
                "registry_webhooks (MODELYARD_REGISTRY_WEBHOOKS='[\"https://ci.example.com/"
                "hooks\"]') to the URLs webhooks may post to"
            )
        try:
            return webhook_url(url, self.allowed)
        except ValueError as error:
            raise ConfigurationError(
                f"webhook URL {url!r} is not allowed: {error}; registry_webhooks "
                "(MODELYARD_REGISTRY_WEBHOOKS) lists where webhooks may post"
            ) from None


def _events(events: Sequence[str] | None) -> list[str]:
    if events is None:
        return list(EVENTS)
    unknown = [event for event in events if event not in EVENTS]
    if unknown or not events:
        raise ConfigurationError(
            f"unknown webhook event(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(EVENTS)}"
        )
    return [event for event in EVENTS if event in events]


def _host(url: str) -> str:
    target = parse_webhook(url)  # never the path or query: they may hold a token
    return f"{target.scheme}://{target.host}:{target.port}"


def _new_delivery(
    webhook_id: str, event: str, payload: dict[str, Any], seq: int | None
) -> dict[str, Any]:
    moment = now()
    return {"id": new_delivery_id(), "webhook_id": webhook_id, "event": event, "audit_seq": seq,
            "payload": payload, "status": "pending", "attempts": 0, "next_attempt_at": moment,
            "last_error": "", "created_at": moment}  # fmt: skip


def _webhook(row: Any) -> Webhook:
    return Webhook.model_validate({**row, "created_at": utc(row["created_at"])})


def _one_webhook(connection: Any, webhook_id: str) -> Row[Any]:
    row = connection.execute(select(webhooks).where(webhooks.c.id == webhook_id)).first()
    if row is None:
        raise NotFound(f"no webhook {webhook_id!r}; `modelyard webhook list` shows them")
    return row  # type: ignore[no-any-return]


def _one_delivery(connection: Any, delivery_id: str) -> Row[Any]:
    row = connection.execute(
        select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
    ).first()
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id!r}")
    return row  # type: ignore[no-any-return]


def _delivery(connection: Any, row: Row[Any]) -> Delivery:
    attempts = connection.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id == row.id)
        .order_by(webhook_attempts.c.id)
    ).all()
    history = [Attempt(at=utc(a.at), status_code=a.status_code, error=a.error,
                       duration_ms=a.duration_ms) for a in attempts]  # fmt: skip
    values = dict(row._mapping)
    for key in ("next_attempt_at", "created_at", "finished_at"):
        values[key] = utc(values[key]) if values[key] is not None else None
    return Delivery.model_validate({**values, "history": history})
