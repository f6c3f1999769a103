"""Stages of model versions: staging (on registration), production (by promotion), archived.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(
            sa.Column("stage", sa.String(16), nullable=False, server_default="staging")
        )


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("stage")
