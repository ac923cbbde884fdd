"""The registry's tables (SQLAlchemy Core). Schema changes happen only through Alembic migrations.

Params, metrics and tags are kept twice on purpose: as JSON on the row, so reading a version is
one row, and as key/value rows, so search can filter and sort on them with indexes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(32)  # uuid4 hex
NAME = String(255)
Timestamp = DateTime(timezone=True)

models = Table(
    "models",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("owner", NAME, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=dict),
    Column("last_version", Integer, nullable=False, default=0),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("tags", JSON, nullable=False, default=dict),
    Column("datasets", JSON, nullable=False, default=dict),
    Column("artifacts", JSON, nullable=False, default=dict),  # name -> manifest digest
    Column("code_revision", NAME, nullable=True),
    Column("created_by", NAME, nullable=False, default=""),
    Column("started_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp, nullable=True),
)

run_metrics = Table(
    "run_metrics",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", NAME, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    Column("timestamp", Timestamp, nullable=False),
    Index("ix_run_metrics_run_key_step", "run_id", "key", "step"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("model_id", ID, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("manifest_digest", String(71), nullable=True),
    Column("flavor", NAME, nullable=True),
    Column("signature", JSON, nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("params", JSON, nullable=False, default=dict),
    Column("metrics", JSON, nullable=False, default=dict),
    Column("tags", JSON, nullable=False, default=dict),
    Column("state", String(16), nullable=False),
    Column("run_id", ID, ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("created_by", NAME, nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
    Index("ix_versions_state", "state"),
    Index("ix_versions_created_at", "created_at"),
)

# A registration's idempotency key: a retry with the same key gets the version already made.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("model_id", ID, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("request_digest", String(64), nullable=False),  # sha256 of the request's fields
    Column("version_id", ID, ForeignKey("versions.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_idempotency_keys_version", "version_id"),
)

# Key/value copies for search: one row per param, metric and tag of each version.
version_params = Table(
    "version_params",
    metadata,
    Column("version_id", ID, ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_version_params_key_value", "key", "value"),
)

version_metrics = Table(
    "version_metrics",
    metadata,
    Column("version_id", ID, ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("value", Float, nullable=False),
    Index("ix_version_metrics_key_value", "key", "value"),
)

version_tags = Table(
    "version_tags",
    metadata,
    Column("version_id", ID, ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_version_tags_key_value", "key", "value"),
)

lineage = Table(
    "lineage",
    metadata,
    Column("child_id", ID, ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("parent_id", ID, ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, nullable=False, default=0),
    Column("relation", String(32), nullable=False, default="parent"),
    Column("details", JSON, nullable=False, default=dict),
    Index("ix_lineage_parent", "parent_id"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", ID, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("version_id", ID, ForeignKey("versions.id"), nullable=False),
    Column("updated_by", NAME, nullable=False, default=""),
    Column("updated_at", Timestamp, nullable=False),
    Index("ix_aliases_version", "version_id"),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model_id", ID, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("name", NAME, nullable=False),
    Column("version_id", ID, nullable=True),
    Column("previous_version_id", ID, nullable=True),
    Column("kind", String(16), nullable=False, default="set"),  # set, rollback, delete
    Column("actor", NAME, nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("at", Timestamp, nullable=False),
    Index("ix_alias_history_model_name", "model_id", "name", "id"),
)

transitions = Table(
    "transitions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("version_id", ID, ForeignKey("versions.id", ondelete="CASCADE"), nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("actor", NAME, nullable=False, default=""),
    Column("comment", Text, nullable=False, default=""),
    Column("at", Timestamp, nullable=False),
    Index("ix_transitions_version", "version_id"),
)

gates = Table(
    "gates",
    metadata,
    Column("id", ID, primary_key=True),
    Column("model_id", ID, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("config", JSON, nullable=False, default=dict),
    Column("created_by", NAME, nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_gates_model", "model_id"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("version_id", ID, ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("approver", NAME, primary_key=True),
    Column("comment", Text, nullable=False, default=""),
    Column("at", Timestamp, nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", Timestamp, nullable=False),
    Column("actor", NAME, nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", NAME, nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user", NAME, nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_by", NAME, nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
)

role_grants = Table(
    "role_grants",
    metadata,
    Column("id", ID, primary_key=True),
    Column("subject", NAME, nullable=False),
    Column("is_group", Boolean, nullable=False, default=False),
    Column("role", String(16), nullable=False),
    Column("models", NAME, nullable=False, default="*"),
    Column("created_by", NAME, nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("subject", "is_group", "role", "models", name="uq_role_grants_grant"),
)

# Registry webhooks: subscriptions, their outbox of deliveries, and each delivery's attempts.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("url", Text, nullable=False),
    Column("models", NAME, nullable=False, default="*"),  # a name or an fnmatch pattern
    Column("events", JSON, nullable=False),  # a list of event names
    Column("secret_salt", String(64), nullable=False),  # the secret is HMAC(key, id + salt)
    Column("description", Text, nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_by", NAME, nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_webhooks_active", "active"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", ID, primary_key=True),
    Column("webhook_id", ID, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(32), nullable=False),
    Column("audit_seq", BigInteger, nullable=True),  # None for a test ping
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("claimed_until", Timestamp, nullable=True),
    Column("claim", String(32), nullable=True),  # who claimed it (a random token)
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "delivery_id",
        ID,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", Timestamp, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=False, default=""),
    Column("duration_ms", Float, nullable=False),
    Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)

# The prediction log and feedback on a shared database (PostgreSQL): every serving replica writes
# here, so any client reads the same window. `record` holds the same JSON bytes as a log line.
prediction_records = Table(
    "prediction_records",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model", NAME, nullable=False),
    Column("version", String(32), nullable=False),
    Column("time", Timestamp, nullable=False),
    Column("request_id", NAME, nullable=False, default=""),
    Column("replica", NAME, nullable=False, default=""),  # hostname:pid of the writer
    Column("record", LargeBinary, nullable=False),
    Index("ix_prediction_records_window", "model", "version", "time"),
)

prediction_feedback = Table(
    "prediction_feedback",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model", NAME, nullable=False),
    Column("time", Timestamp, nullable=False),
    Column("request_id", NAME, nullable=False),
    Column("record", LargeBinary, nullable=False),
    Index("ix_prediction_feedback_model", "model", "time"),
)

# Leases: who does a job that one process of many should do (evaluate alert rules), until when.
leases = Table(
    "leases",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("holder", NAME, nullable=False),
    Column("acquired_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)
