"""idempotency: a registration's key, so a retried registration returns the version it made

Revision ID: 0003_idempotency
Revises: 0002_principals
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_idempotency"
down_revision = "0002_principals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_idempotency_keys_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name=op.f("fk_idempotency_keys_version_id_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_version", "idempotency_keys", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_version", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
