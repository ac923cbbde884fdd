"""leases: named, expiring leases, so one process of many does a job (evaluates alert rules)

Revision ID: 0006_leases
Revises: 0005_prediction_log
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_leases"
down_revision = "0005_prediction_log"
branch_labels = None
depends_on = None

_NAME = sa.String(length=255)
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("holder", _NAME, nullable=False),
        sa.Column("acquired_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
