"""The registry: models, versions, aliases, runs, lineage, lifecycle, search and audit."""

from __future__ import annotations

from modelyard.registry._aliases import AliasNotFound
from modelyard.registry._audit import AuditHeadMissing, ChainCheck
from modelyard.registry._database import Database
from modelyard.registry._diff import Change, FileChange, TensorChange, VersionDiff
from modelyard.registry._filters import InvalidFilter
from modelyard.registry._lifecycle import GateFailed, InvalidTransition, SelfApproval
from modelyard.registry._lineage import Lineage, LineageEdge
from modelyard.registry._principals import ApiToken, IssuedToken, Principals, RoleGrant
from modelyard.registry._records import (
    AliasEvent,
    AuditEvent,
    AuditHead,
    Gate,
    MetricPoint,
    Model,
    ModelVersion,
    Run,
    SearchPage,
    State,
    Transition,
)
from modelyard.registry._references import Reference
from modelyard.registry._registry import Registry
from modelyard.registry._runs import RunNotFound
from modelyard.registry._versions import ModelNotFound, VersionInUse, VersionNotFound

__all__ = [
    "AliasEvent",
    "AliasNotFound",
    "ApiToken",
    "AuditEvent",
    "AuditHead",
    "AuditHeadMissing",
    "ChainCheck",
    "Change",
    "Database",
    "FileChange",
    "Gate",
    "GateFailed",
    "InvalidFilter",
    "InvalidTransition",
    "IssuedToken",
    "Lineage",
    "LineageEdge",
    "MetricPoint",
    "Model",
    "ModelNotFound",
    "ModelVersion",
    "Principals",
    "Reference",
    "Registry",
    "RoleGrant",
    "Run",
    "RunNotFound",
    "SearchPage",
    "SelfApproval",
    "State",
    "TensorChange",
    "Transition",
    "VersionDiff",
    "VersionInUse",
    "VersionNotFound",
]
