"""Request bodies of the registry REST API (responses are the registry's own records)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionCreate(_Body):
    """A new version of a model."""

    manifest_digest: str | None = None
    flavor: str | None = None
    signature: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    metrics: dict[str, float] | None = None
    tags: dict[str, Any] | None = None
    parents: list[str] | None = None
    description: str = ""
    run_id: str | None = None
    alias: str | None = None
    relation: str | None = None
    blobs: dict[str, str] | None = None
    """Small blobs sent along (digest -> base64), so a small model registers in one request."""


class Search(_Body):
    """A search: filter, ordering and page."""

    filter: str | None = None
    order_by: str | None = None
    limit: int = 100
    page_token: str | None = None


class ModelUpdate(_Body):
    """Changes to a model's own description and tags (absent fields change nothing)."""

    description: str | None = None
    """The new description; null keeps the old one, "" clears it."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags to set (others stay)."""
    delete_tags: list[str] = Field(default_factory=list)
    """Tag keys to remove; keys the model does not have are ignored."""


class TagValue(_Body):
    """The value of a tag."""

    value: str


class AliasTarget(_Body):
    """Where an alias should point, and why."""

    version: str
    reason: str = ""


class Reason(_Body):
    """Why something was done, for the history."""

    reason: str = ""


class TransitionRequest(_Body):
    """A move to a lifecycle state."""

    state: str
    comment: str = ""
    move_alias: bool = True


class Comment(_Body):
    """A note kept with an approval."""

    comment: str = ""


class GateCreate(_Body):
    """A gate for a model."""

    kind: str
    to_state: str = "production"
    config: dict[str, Any] = Field(default_factory=dict)


class RunCreate(_Body):
    """A new run."""

    name: str = ""
    params: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    datasets: dict[str, str] | None = None
    code_revision: str | None = None


class Values(_Body):
    """Key/value pairs to add to a run."""

    values: dict[str, Any]


class MetricsLog(_Body):
    """Metric values at a step."""

    metrics: dict[str, float]
    step: int | None = None


class Artifact(_Body):
    """A stored folder to attach to a run."""

    name: str
    manifest_digest: str


class RunEnd(_Body):
    """How a run ended."""

    status: str = "finished"


class TokenCreate(_Body):
    """A new API token for `user`."""

    user: str = Field(min_length=1, max_length=255)
    expires_in_seconds: int | None = Field(default=None, ge=1, le=10 * 366 * 86400)
    """Lifetime; None for a token that never expires."""
    description: str = Field(default="", max_length=1000)


class GrantCreate(_Body):
    """A role given to a user (or a group) on the models matching `models`."""

    subject: str = Field(min_length=1, max_length=255)
    role: str
    models: str = "*"
    group: bool = False
