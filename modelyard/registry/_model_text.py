"""A model's own description and tags, and the limits every stored tag key and text keeps
(PostgreSQL refuses NUL in text, and its tag key columns hold 255 characters)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, update

from modelyard.errors import ConfigurationError, InvalidReference
from modelyard.registry._audit import append
from modelyard.registry._tables import models

TAG_KEY_MAX = 255
"""The longest tag key (the search rows' key column)."""

TEXT_MAX = 65_536
"""The longest model description or model tag value, in characters."""


# NUL, which PostgreSQL cannot store in text, and lone surrogates, which cannot be encoded.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def check_tag_key(key: str) -> str:
    """`key` if it is a tag key of 1-`TAG_KEY_MAX` storable characters, else `InvalidReference`."""
    if not 0 < len(key) <= TAG_KEY_MAX or _UNSTORABLE.search(key):
        shown = key if len(key) <= 40 else f"{key[:40]}…"
        raise InvalidReference(
            shown,
            expected=f"a non-empty tag key of at most {TAG_KEY_MAX} characters, no NUL "
            f"(this one has {len(key)})",
        )
    return key


def check_text(text: str, *, what: str) -> str:
    """`text` if it is at most `TEXT_MAX` storable characters, else `ConfigurationError`."""
    if _UNSTORABLE.search(text):
        raise ConfigurationError(f"{what} may not contain NUL or unpaired surrogate characters")
    if len(text) > TEXT_MAX:
        raise ConfigurationError(
            f"{what} may be at most {TEXT_MAX} characters; this one has {len(text)}"
        )
    return text


def update_model(
    connection: Connection,
    row: Row[Any],
    *,
    description: str | None,
    tags: Mapping[str, str],
    delete_tags: Sequence[str],
    actor: str,
) -> None:
    """Change a model's description and tags (set `tags`, remove `delete_tags`); the audit
    event records only what changed, and nothing is written when nothing did."""
    both = sorted(set(tags) & set(delete_tags))
    if both:
        raise ConfigurationError(f"tag {both[0]!r} is both set and deleted; choose one")
    for key, value in tags.items():
        check_text(value, what=f"the value of model tag {check_tag_key(key)!r}")
    for key in delete_tags:
        check_tag_key(key)
    if description is not None:
        check_text(description, what="a model's description")
    old_tags: dict[str, str] = dict(row.tags)
    new_tags = {k: v for k, v in {**old_tags, **tags}.items() if k not in delete_tags}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if description is not None and description != row.description:
        before["description"], after["description"] = row.description, description
    for key in sorted(set(old_tags) | set(new_tags)):
        if old_tags.get(key) != new_tags.get(key):
            before[f"tags.{key}"], after[f"tags.{key}"] = old_tags.get(key), new_tags.get(key)
    if not after:
        return
    values: dict[str, Any] = {"tags": new_tags, "updated_at": datetime.now(UTC)}
    if "description" in after:
        values["description"] = description
    connection.execute(update(models).where(models.c.id == row.id).values(**values))
    append(
        connection, actor=actor, action="model.update", target=row.name, before=before, after=after
    )
