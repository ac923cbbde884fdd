"""Leases: a named job that one process of many should do (evaluate alert rules), held by one
holder until it expires.

`acquire` is one atomic take-or-renew statement (an upsert): the row is written only where nobody
holds the lease, its holder is the caller (a renewal), or its holder let it expire. Whatever the
outcome, the lease as it stands is returned, so the caller sees who holds it. A holder that stops
cleanly releases it (`release`), so another takes over at its next try; one that dies loses it
when it expires.

Expiry is judged by one clock: the database's on PostgreSQL (replicas on several machines),
this machine's on SQLite (one machine). A holder should also stop acting on its own clock once
its last successful renewal is `seconds` old (see `modelyard.monitoring.AlertLoop`): the
database may be unreachable while another process takes the lease over.

    >>> lease = acquire(database, "alerts:3f9a", holder="web-1:4242:9c1e", seconds=90)
    >>> lease.holder == "web-1:4242:9c1e"
    True
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Delete, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert

from modelyard.errors import ConfigurationError
from modelyard.registry._audit import utc
from modelyard.registry._database import Database
from modelyard.registry._tables import leases
from modelyard.registry._versions import now

MAX_SECONDS = 86_400.0
"""The longest lease (a day): a holder renews well before it runs out."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}")
_HOLDER = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces


class Lease(BaseModel):
    """A lease as it stands: who holds it, since when (their first take), until when."""

    model_config = ConfigDict(frozen=True)

    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


def acquire(database: Database, name: str, *, holder: str, seconds: float) -> Lease:
    """Take `name` for `holder` for `seconds`, or renew it if `holder` holds it; the lease as it
    stands after (held by someone else when they hold it and it has not expired)."""
    check(name, holder=holder, seconds=seconds)
    with database.write() as connection:
        moment = _clock(connection)
        statement = acquire_statement(
            connection.dialect.name, name, holder=holder, moment=moment, seconds=seconds
        )
        row = connection.execute(statement).one_or_none()
        if row is None:  # held by someone else: the upsert's condition left it alone
            row = connection.execute(select(leases).where(leases.c.name == name)).one()
    return Lease(name=row.name, holder=row.holder, acquired_at=utc(row.acquired_at),
                 expires_at=utc(row.expires_at))  # fmt: skip


def release(database: Database, name: str, *, holder: str) -> None:
    """Give `name` up if `holder` holds it (else nothing happens: it expired and was taken)."""
    check(name, holder=holder, seconds=1.0)
    with database.write() as connection:
        connection.execute(release_statement(name, holder=holder))


def acquire_statement(
    dialect: str, name: str, *, holder: str, moment: datetime, seconds: float
) -> ReturningInsert[Any]:
    """The take-or-renew upsert: insert the lease, or on a conflict overwrite it only where the
    caller holds it or it expired; returns the row only when written."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    new = insert(leases).values(
        name=name, holder=holder, acquired_at=moment,
        expires_at=moment + timedelta(seconds=seconds),
    )  # fmt: skip
    renewal = leases.c.holder == new.excluded.holder
    return new.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={
            "holder": new.excluded.holder,
            "acquired_at": case((renewal, leases.c.acquired_at), else_=new.excluded.acquired_at),
            "expires_at": new.excluded.expires_at,
        },
        where=renewal | (leases.c.expires_at <= moment),
    ).returning(leases)


def release_statement(name: str, *, holder: str) -> Delete:
    """Delete the lease where `holder` holds it."""
    return delete(leases).where(leases.c.name == name, leases.c.holder == holder)


def check(name: str, *, holder: str, seconds: float) -> None:
    """Refuse a lease name, holder or duration that cannot be right (`ConfigurationError`)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"lease name {str(name)[:80]!r} is not valid: up to 128 letters, digits and . _ : / @ -"
        )
    if not isinstance(holder, str) or not _HOLDER.fullmatch(holder):
        raise ConfigurationError(
            "a lease holder is 1 to 255 printable ASCII characters without spaces"
        )
    if not isinstance(seconds, int | float) or not 0 < seconds <= MAX_SECONDS:  # nan too
        raise ConfigurationError(f"a lease lasts more than 0 and at most {MAX_SECONDS:.0f} seconds")


def _clock(connection: Connection) -> datetime:
    """The time leases are judged by: PostgreSQL's, shared by every machine using it."""
    if connection.dialect.name == "postgresql":
        return utc(connection.execute(select(func.now())).scalar_one())
    return now()
