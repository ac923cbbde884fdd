"""The registry: models, versions, aliases, runs, lineage, lifecycle, search and audit."""

from __future__ import annotations

from modelyard.errors import (
    AliasNotFound,
    AuditHeadMissing,
    GateFailed,
    InvalidFilter,
    InvalidTransition,
    ModelNotFound,
    RunNotFound,
    SelfApproval,
    VersionInUse,
    VersionNotFound,
)
from modelyard.registry._audit import ChainCheck
from modelyard.registry._backup import PG_DUMP_GUIDANCE, Backup, back_up, restore_backup
from modelyard.registry._contract import RegistryAPI
from modelyard.registry._database import Database
from modelyard.registry._diff import Change, FileChange, TensorChange, VersionDiff, diff_versions
from modelyard.registry._leases import Lease
from modelyard.registry._lineage import Lineage, LineageEdge
from modelyard.registry._listings import audit_page, metric_histories, versions_by_run
from modelyard.registry._notify import AliasListener, AliasMove, AliasPoller
from modelyard.registry._prediction_rows import (
    FeedbackRow,
    PredictionRow,
    WindowCount,
    count_predictions,
    insert_feedback,
    insert_predictions,
    last_prediction,
    predicted_versions,
    read_feedback_rows,
    read_predictions,
    records_statement,
)
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
from modelyard.registry._roots import Root, bytes_only_in, registry_roots
from modelyard.registry._summaries import (
    ModelPage,
    ModelSummary,
    metric_keys,
    page_token,
    summarize_models,
)
from modelyard.registry._webhook_delivery import RetryPolicy, has_due
from modelyard.registry._webhook_outbox import EVENTS as WEBHOOK_EVENTS
from modelyard.registry._webhooks import Attempt, Delivery, NewWebhook, Webhook, Webhooks

__all__ = [
    "AliasEvent",
    "AliasListener",
    "AliasMove",
    "AliasNotFound",
    "AliasPoller",
    "ApiToken",
    "Attempt",
    "AuditEvent",
    "AuditHead",
    "AuditHeadMissing",
    "Backup",
    "ChainCheck",
    "Change",
    "Database",
    "Delivery",
    "FeedbackRow",
    "FileChange",
    "Gate",
    "GateFailed",
    "InvalidFilter",
    "InvalidTransition",
    "IssuedToken",
    "Lease",
    "Lineage",
    "LineageEdge",
    "MetricPoint",
    "Model",
    "ModelNotFound",
    "ModelPage",
    "ModelSummary",
    "ModelVersion",
    "NewWebhook",
    "PG_DUMP_GUIDANCE",
    "PredictionRow",
    "Principals",
    "Reference",
    "Registry",
    "RegistryAPI",
    "RetryPolicy",
    "RoleGrant",
    "Root",
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
    "WEBHOOK_EVENTS",
    "Webhook",
    "Webhooks",
    "WindowCount",
    "audit_page",
    "back_up",
    "bytes_only_in",
    "count_predictions",
    "diff_versions",
    "has_due",
    "insert_feedback",
    "insert_predictions",
    "last_prediction",
    "metric_histories",
    "metric_keys",
    "page_token",
    "predicted_versions",
    "read_feedback_rows",
    "read_predictions",
    "records_statement",
    "registry_roots",
    "restore_backup",
    "summarize_models",
    "versions_by_run",
]
