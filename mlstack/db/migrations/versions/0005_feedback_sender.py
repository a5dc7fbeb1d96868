"""Record who sent each label (hashed user id and client address), for the judge's per-sender caps.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("sender_hash", sa.String(32), nullable=True))
        batch.add_column(sa.Column("address_hash", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("address_hash")
        batch.drop_column("sender_hash")
