"""The webhook dispatcher: claims due deliveries, POSTs them signed, records every attempt.

Claiming is safe with several servers on one database: a claim marks rows with a random token
and a lease (`claimed_until`) in one short write transaction (on PostgreSQL the rows are picked
`FOR UPDATE SKIP LOCKED`, so two claimers never pick the same row; SQLite has one writer). The
result is written only where the token still matches, so a claim that outlived its lease and
was taken over cannot overwrite the new claimer's result.

A POST follows no redirect (a 3xx is a failure: the allow-list checked this URL, not another),
ignores proxy environment variables, and gives up after `RetryPolicy.timeout` seconds; 2xx is
delivered, anything else is retried after `RetryPolicy.delays` (with jitter), then `failed`.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, exists, insert, or_, select, update

from modelyard.errors import ConfigurationError
from modelyard.registry._database import Database
from modelyard.registry._tables import webhook_attempts, webhook_deliveries, webhooks
from modelyard.registry._versions import now as utc_now
from modelyard.security import DELIVERY_HEADER, EVENT_HEADER, parse_webhook, signed_headers

_D = webhook_deliveries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When failed deliveries are tried again: after `delays[i]` seconds (times a random
    factor within ±`jitter`) following failure i+1; after `len(delays) + 1` failures a
    delivery is `failed`. `timeout`: seconds one POST may take."""

    delays: tuple[float, ...] = (10, 30, 120, 600, 3600, 3600, 3600)
    jitter: float = 0.2
    timeout: float = 10.0

    @property
    def max_attempts(self) -> int:
        """How many tries a delivery gets."""
        return len(self.delays) + 1

    def delay(self, attempts: int) -> float | None:
        """Seconds before the next try after `attempts` failed ones; None: give up."""
        if attempts > len(self.delays):
            return None
        spread = 1 + random.uniform(-self.jitter, self.jitter)  # timing jitter, not a secret
        return self.delays[attempts - 1] * spread


def webhook_secret(key: bytes | None, *, webhook_id: str, salt: str) -> str:
    """A subscription's signing secret: derived from the server's webhook key, never stored."""
    if key is None:
        raise ConfigurationError(
            "registry webhooks need the server secret (MODELYARD_SECRET_KEY, or the generated "
            "<home>/secret.key): their signing secrets are derived from it"
        )
    mac = hmac.new(key, f"{webhook_id}.{salt}".encode(), hashlib.sha256)
    return "whsec_" + mac.hexdigest()


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: str
    event: str
    payload: dict[str, Any]
    attempts: int
    url: str
    secret: str


def has_due(database: Database, *, at: datetime | None = None) -> bool:
    """Whether a delivery is due (a cheap read, before taking the write lock to claim)."""
    moment = at or utc_now()
    with database.read() as connection:
        return bool(connection.execute(select(exists().where(_due(moment)))).scalar())


def deliver_due(
    database: Database,
    *,
    policy: RetryPolicy | None = None,
    at: datetime | None = None,
    limit: int = 20,
    only: Sequence[str] = (),
) -> int:
    """Claim up to `limit` due deliveries (or the ones in `only`, due or not), send each, and
    record the outcome; return how many were attempted."""
    moment = at or utc_now()
    policy = policy or RetryPolicy()
    claim = uuid.uuid4().hex
    lease = timedelta(seconds=policy.timeout * limit + 60)  # outlasts the whole batch
    with database.write() as connection:
        claimed = _claim(connection, database.webhook_key, claim, moment, lease, limit, only)
    for delivery in claimed:
        status, error, took = _post(delivery, policy.timeout)
        _record(database, delivery, claim, policy, status=status, error=error, took=took)
    return len(claimed)


def _due(moment: datetime) -> Any:
    return and_(_D.c.next_attempt_at <= moment, _free(moment))


def _free(moment: datetime) -> Any:
    """Pending and claimed by no one (or by a claim whose lease ran out)."""
    return and_(
        _D.c.status == "pending",
        or_(_D.c.claimed_until.is_(None), _D.c.claimed_until < moment),
    )


def _claim(
    connection: Connection,
    key: bytes | None,
    claim: str,
    moment: datetime,
    lease: timedelta,
    limit: int,
    only: Sequence[str],
) -> list[_Claimed]:
    where = and_(_D.c.id.in_(list(only)), _free(moment)) if only else _due(moment)
    query = (
        select(
            _D.c.id,
            _D.c.event,
            _D.c.payload,
            _D.c.attempts,
            webhooks.c.id.label("hook"),
            webhooks.c.url,
            webhooks.c.secret_salt,
        )  # fmt: skip
        .join(webhooks, webhooks.c.id == _D.c.webhook_id)
        .where(where, webhooks.c.active.is_(True))
        .order_by(_D.c.next_attempt_at, _D.c.id)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_D)
    rows = connection.execute(query).all()
    if not rows:
        return []
    connection.execute(
        update(_D)
        .where(_D.c.id.in_([row.id for row in rows]))
        .values(claim=claim, claimed_until=moment + lease)
    )
    return [
        _Claimed(
            id=row.id,
            event=row.event,
            payload=row.payload,
            attempts=row.attempts,
            url=row.url,
            secret=webhook_secret(key, webhook_id=row.hook, salt=row.secret_salt),
        )  # fmt: skip
        for row in rows
    ]


def _post(delivery: _Claimed, timeout: float) -> tuple[int | None, str, float]:
    """POST one delivery: (status code or None, a short error or '', milliseconds)."""
    import httpx  # only when something is delivered: importing the registry stays light

    body = orjson.dumps(delivery.payload, option=orjson.OPT_SORT_KEYS)
    headers = {"Content-Type": "application/json", "User-Agent": "modelyard-webhooks",
               EVENT_HEADER: delivery.event, DELIVERY_HEADER: delivery.id,
               **signed_headers(secret=delivery.secret, body=body,
                                timestamp=int(time.time()))}  # fmt: skip
    started = time.perf_counter()
    try:
        url = parse_webhook(delivery.url).url  # normalised again, whatever wrote the row
        with (
            httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            pass  # the answer's body is never read: a receiver cannot flood this process
    except (httpx.HTTPError, ValueError) as error:
        took = (time.perf_counter() - started) * 1000
        return None, f"{type(error).__name__}: {error}"[:300], took
    took = (time.perf_counter() - started) * 1000
    if 200 <= response.status_code < 300:
        return response.status_code, "", took
    if response.is_redirect:
        return response.status_code, "a redirect, not followed", took
    return response.status_code, f"HTTP {response.status_code}", took


def _record(
    database: Database,
    delivery: _Claimed,
    claim: str,
    policy: RetryPolicy,
    *,
    status: int | None,
    error: str,
    took: float,
) -> None:
    moment = utc_now()
    attempts = delivery.attempts + 1
    delivered = not error
    delay = None if delivered else policy.delay(attempts)
    values: dict[str, Any] = {"attempts": attempts, "claim": None, "claimed_until": None,
                              "last_status_code": status, "last_error": error}  # fmt: skip
    if delivered or delay is None:
        values.update(status="delivered" if delivered else "failed", finished_at=moment)
    else:
        values.update(next_attempt_at=moment + timedelta(seconds=delay))
    with database.write() as connection:
        result = connection.execute(
            update(_D).where(_D.c.id == delivery.id, _D.c.claim == claim).values(**values)
        )
        if result.rowcount:  # else deleted with its webhook, or claimed anew after the lease
            connection.execute(
                insert(webhook_attempts).values(
                    delivery_id=delivery.id,
                    at=moment,
                    status_code=status,
                    error=error,
                    duration_ms=round(took, 1),
                )  # fmt: skip
            )
