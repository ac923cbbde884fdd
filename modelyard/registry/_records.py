"""What the registry hands out: immutable records of models, versions, aliases, runs and events."""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from modelyard import _html
from modelyard.errors import ConfigurationError


def _nan_for_null(value: Any) -> Any:
    """A metric stored as `null`: a non-finite number written by a modelyard that accepted them
    (JSON has no infinity); read back as NaN so old rows still load."""
    return math.nan if value is None else value


Number = Annotated[float, BeforeValidator(_nan_for_null)]
"""A metric value: finite when written now; NaN (`null` in JSON) for a non-finite value an older
modelyard stored."""


class State(StrEnum):
    """Lifecycle states of a version."""

    REGISTERED = "registered"
    VALIDATED = "validated"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Model(_Record):
    """A named thing that gets versions."""

    id: str
    name: str
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    latest_version: int = 0
    aliases: dict[str, int] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime

    def _repr_html_(self) -> str:
        aliases = [(f"@{alias}", f"{self.name}:{number}") for alias, number in self.aliases.items()]
        return _html.card(
            self.name,
            _html.table(None, [("versions", self.latest_version), ("owner", self.owner or "-")]),
            _html.section("description", _html.escape(self.description)),
            _html.section("aliases", _html.table(None, aliases)),
            _html.section("tags", _html.pairs(self.tags)),
            note="model",
        )


class ModelVersion(_Record):
    """An immutable version of a model; only tags, description and state change after creation."""

    id: str
    name: str
    number: int
    parents: list[str] = Field(default_factory=list)
    manifest_digest: str | None = None
    flavor: str | None = None
    signature: dict[str, Any] | None = None
    description: str = ""
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, Number] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    state: State = State.REGISTERED
    run_id: str | None = None
    created_by: str = ""
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        """`name:number`, the reference that always means this version."""
        return f"{self.name}:{self.number}"

    def _repr_html_(self) -> str:
        facts = [
            ("state", self.state.value),
            ("flavor", self.flavor or "-"),
            ("created", f"{self.created_at:%Y-%m-%d %H:%M} by {self.created_by or '-'}"),
            ("parents", ", ".join(self.parents) or "-"),
            ("run", self.run_id or "-"),
        ]
        return _html.card(
            self.ref,
            _html.table(None, facts),
            _html.section("description", _html.escape(self.description)),
            _html.section("params", _html.pairs(self.params)),
            _html.section("metrics", _html.pairs({k: f"{v:.6g}" for k, v in self.metrics.items()})),
            _html.section("tags", _html.pairs(self.tags)),
            _html.section("signature", _html.signature(self.signature)),
            note="model version",
        )


class AliasEvent(_Record):
    """One move of an alias: from `previous` to `version` (None when the alias was deleted)."""

    name: str
    alias: str
    version: int | None
    previous: int | None
    actor: str
    reason: str
    at: datetime


class Transition(_Record):
    """A recorded change of a version's state."""

    ref: str
    from_state: State
    to_state: State
    actor: str
    comment: str
    at: datetime


class Gate(_Record):
    """A rule checked before a version may enter `to_state`."""

    id: str
    name: str
    to_state: State
    kind: str
    config: dict[str, Any] = Field(default_factory=dict)


class MetricPoint(_Record):
    """One value of a run's metric at a step."""

    key: str
    step: int
    value: Number
    timestamp: datetime


class Run(_Record):
    """One training or tuning run."""

    id: str
    name: str = ""
    status: str = "running"
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    datasets: dict[str, str] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    code_revision: str | None = None
    created_by: str = ""
    started_at: datetime
    ended_at: datetime | None = None
    metrics: dict[str, Number] = Field(default_factory=dict)

    def _repr_html_(self) -> str:
        facts = [
            ("status", self.status),
            ("started", f"{self.started_at:%Y-%m-%d %H:%M:%S}"),
            ("ended", f"{self.ended_at:%Y-%m-%d %H:%M:%S}" if self.ended_at else "-"),
            ("by", self.created_by or "-"),
            ("code", self.code_revision or "-"),
        ]
        return _html.card(
            self.name or self.id,
            _html.table(None, facts),
            _html.section("params", _html.pairs(self.params)),
            _html.section("metrics", _html.pairs({k: f"{v:.6g}" for k, v in self.metrics.items()})),
            _html.section("tags", _html.pairs(self.tags)),
            note=f"run {self.id}",
        )


class AuditEvent(_Record):
    """An append-only, hash-chained record of a change."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None
    prev_hash: str
    hash: str


class AuditHead(_Record):
    """Where the audit chain ends: the last event's `seq` and `hash`; written `SEQ:HASH`."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> AuditHead:
        """Read `SEQ:HASH` (as `modelyard audit head` prints it)."""
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or len(seq) > 18 or re.fullmatch(r"[0-9a-f]{64}", digest) is None:
            raise ConfigurationError(
                f"audit head {text!r} is not SEQ:HASH (a number, ':', 64 hex digits)"
            )
        return cls(seq=int(seq), hash=digest)


class SearchPage(_Record):
    """One page of search results; pass `next_page_token` back for the next (None at the end)."""

    versions: list[ModelVersion]
    next_page_token: str | None = None
