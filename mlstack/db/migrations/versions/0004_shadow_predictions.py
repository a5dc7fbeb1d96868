"""Add the shadow prediction (the other alias's model on the same request) to predictions.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("shadow_version", sa.String(32), nullable=True))
        batch.add_column(sa.Column("shadow_prediction", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("shadow_prediction")
        batch.drop_column("shadow_version")
