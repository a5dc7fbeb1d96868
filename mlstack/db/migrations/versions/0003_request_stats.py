"""Create request_stats: per-slot, per-version counts of answered requests, errors and slow answers.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "request_stats",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("variant", sa.String(8), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("over_50_ms", sa.Integer, nullable=False),
        sa.Column("over_100_ms", sa.Integer, nullable=False),
        sa.Column("over_250_ms", sa.Integer, nullable=False),
        sa.Column("over_500_ms", sa.Integer, nullable=False),
        sa.Column("over_1000_ms", sa.Integer, nullable=False),
        sa.Column("latency_ms_sum", sa.Float, nullable=False),
    )
    op.create_index("ix_request_stats_variant_period", "request_stats", ["variant", "period_end"])


def downgrade() -> None:
    op.drop_index("ix_request_stats_variant_period", table_name="request_stats")
    op.drop_table("request_stats")
