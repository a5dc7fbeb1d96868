"""Create predictions and feedback, the prediction log the serving slots write.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("variant", sa.String(8), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("model_alias", sa.String(64), nullable=False),
        sa.Column("user_hash", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("prediction", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_variant_created_at", "predictions", ["variant", "created_at"])
    op.create_table(
        "feedback",
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("actual", sa.Float, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_received_at", "feedback", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_received_at", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_predictions_variant_created_at", table_name="predictions")
    op.drop_index("ix_predictions_created_at", table_name="predictions")
    op.drop_table("predictions")
