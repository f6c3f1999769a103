"""private_key_jwt clients: a public key per principal, and spent assertion ids.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("principals") as batch:
        batch.add_column(sa.Column("public_jwk", sa.JSON, nullable=True))
    op.create_table(
        "client_assertions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_client_assertions_expires_at", "client_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_client_assertions_expires_at", "client_assertions")
    op.drop_table("client_assertions")
    with op.batch_alter_table("principals") as batch:
        batch.drop_column("public_jwk")
