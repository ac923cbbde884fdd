"""prediction_log: the prediction log and feedback in the registry's database, shared by replicas

Revision ID: 0005_prediction_log
Revises: 0004_webhooks
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_prediction_log"
down_revision = "0004_webhooks"
branch_labels = None
depends_on = None

_NAME = sa.String(length=255)
_WHEN = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
        nullable=False,
    )  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "prediction_records",
        _id(),
        sa.Column("model", _NAME, nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("time", _WHEN, nullable=False),
        sa.Column("request_id", _NAME, nullable=False),
        sa.Column("replica", _NAME, nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_records")),
    )
    op.create_index(
        "ix_prediction_records_window", "prediction_records", ["model", "version", "time"]
    )
    op.create_table(
        "prediction_feedback",
        _id(),
        sa.Column("model", _NAME, nullable=False),
        sa.Column("time", _WHEN, nullable=False),
        sa.Column("request_id", _NAME, nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_feedback")),
    )
    op.create_index("ix_prediction_feedback_model", "prediction_feedback", ["model", "time"])


def downgrade() -> None:
    op.drop_index("ix_prediction_feedback_model", table_name="prediction_feedback")
    op.drop_table("prediction_feedback")
    op.drop_index("ix_prediction_records_window", table_name="prediction_records")
    op.drop_table("prediction_records")
