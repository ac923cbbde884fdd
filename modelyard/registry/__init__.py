"""The registry: models, versions, aliases, runs, lineage, lifecycle, search and audit."""

from __future__ import annotations

from modelyard.registry._aliases import AliasNotFound
from modelyard.registry._audit import ChainCheck
from modelyard.registry._database import Database
from modelyard.registry._lifecycle import GateFailed, InvalidTransition, SelfApproval
from modelyard.registry._records import (
    AliasEvent,
    AuditEvent,
    Gate,
    MetricPoint,
    Model,
    ModelVersion,
    Run,
    State,
    Transition,
)
from modelyard.registry._references import Reference
from modelyard.registry._registry import Registry
from modelyard.registry._versions import ModelNotFound, VersionInUse, VersionNotFound

__all__ = [
    "AliasEvent",
    "AliasNotFound",
    "AuditEvent",
    "ChainCheck",
    "Database",
    "Gate",
    "GateFailed",
    "InvalidTransition",
    "MetricPoint",
    "Model",
    "ModelNotFound",
    "ModelVersion",
    "Reference",
    "Registry",
    "Run",
    "SelfApproval",
    "State",
    "Transition",
    "VersionInUse",
    "VersionNotFound",
]
