"""Per-version input sanitizer and robustness summary.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("input_policy", sa.JSON, nullable=True))
        batch.add_column(sa.Column("robustness", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("robustness")
        batch.drop_column("input_policy")
