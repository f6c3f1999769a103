"""Tokenization vault and differential-privacy budgets.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vault_tokens",
        sa.Column("token", sa.String(40), primary_key=True),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("lookup", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("field", "lookup", name="uq_vault_tokens_field_lookup"),
    )
    op.create_table(
        "privacy_budgets",
        sa.Column("dataset", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("epsilon_total", sa.Float, nullable=False),
        sa.Column("delta_total", sa.Float, nullable=False),
        sa.Column("epsilon_spent", sa.Float, nullable=False),
        sa.Column("delta_spent", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "privacy_charges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("query", sa.String(200), nullable=False),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("delta", sa.Float, nullable=False),
    )
    op.create_index("ix_privacy_charges_dataset", "privacy_charges", ["dataset"])
    op.create_index("ix_privacy_charges_principal", "privacy_charges", ["principal"])


def downgrade() -> None:
    op.drop_table("privacy_charges")
    op.drop_table("privacy_budgets")
    op.drop_table("vault_tokens")
