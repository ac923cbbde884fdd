"""Idempotency keys: a registration retried with the same key returns the version it made.

A client that lost the answer to a registration (the connection dropped after the commit, the
process was killed) sends the same request again with the same key; the registry finds the key
and answers with the version already made instead of making a second one. The same key with a
different request is a client bug, refused with `IdempotencyConflict`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from modelyard.errors import IdempotencyConflict, InvalidReference
from modelyard.registry._tables import idempotency_keys, models, versions

_KEY = re.compile(r"[\x21-\x7e]{1,255}")

_FIND = (
    select(idempotency_keys.c.request_digest, versions.c.number, idempotency_keys.c.version_id)
    .join(models, models.c.id == idempotency_keys.c.model_id)
    .join(versions, versions.c.id == idempotency_keys.c.version_id)
    .where(models.c.name == bindparam("model_name"), idempotency_keys.c.key == bindparam("key"))
)


def check_key(key: str) -> str:
    """`key`, if it is 1-255 printable ASCII characters without spaces (a UUID fits)."""
    if not _KEY.fullmatch(key):
        raise InvalidReference(key, expected="an idempotency key of 1-255 printable characters")
    return key


def request_digest(fields: Mapping[str, Any]) -> str:
    """The sha256 of a registration's fields, written canonically: what a retry must repeat."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def replayed(connection: Connection, *, name: str, key: str, digest: str) -> str | None:
    """The id of the version `key` already registered for model `name` with this same request,
    None if the key is new; `IdempotencyConflict` if it was used for a different request."""
    row = connection.execute(_FIND, {"model_name": name, "key": key}).first()
    if row is None:
        return None
    if row.request_digest != digest:
        raise IdempotencyConflict(key, model=name, version=f"{name}:{row.number}")
    return str(row.version_id)


def remember(
    connection: Connection, *, model_id: str, key: str, digest: str, version: Mapping[str, Any]
) -> None:
    """Record that `key` registered `version` (the values `insert_version` returned). A second
    writer with the same key fails here on the primary key, and its transaction rolls back."""
    connection.execute(
        insert(idempotency_keys).values(
            model_id=model_id,
            key=key,
            request_digest=digest,
            version_id=version["id"],
            created_at=version["created_at"],
        )
    )
