"""Model risk tier and data classification, for policies.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("risk_tier", sa.String(16), nullable=True))
        batch.add_column(sa.Column("classification", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("classification")
        batch.drop_column("risk_tier")
