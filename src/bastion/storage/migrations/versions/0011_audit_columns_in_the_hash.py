"""Audit entries keep only what the leaf hash covers; checkpoints keep their tree's frontier.

The ``time``, ``event`` and ``principal`` columns repeated fields of the hashed entry
outside the hash: an edit to them passed verification and hid entries from search. Search
now reads the hashed entries, so the copies go. Checkpoints gain the right edge of their
tree, so a new process extends the tree from the newest checkpoint instead of rereading it.

Revision ID: 0011
Revises: 0010
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COPIES = ("time", "event", "principal")


def upgrade() -> None:
    for name in _COPIES:
        op.drop_index(f"ix_audit_entries_{name}", "audit_entries")
    with op.batch_alter_table("audit_entries") as batch:
        for name in _COPIES:
            batch.drop_column(name)
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.add_column(sa.Column("frontier", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.drop_column("frontier")
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("time", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("event", sa.String(48), nullable=False, server_default=""))
        batch.add_column(sa.Column("principal", sa.String(64), nullable=False, server_default=""))
    entries = sa.table(
        "audit_entries",
        sa.column("seq", sa.BigInteger),
        sa.column("entry", sa.Text),
        *(sa.column(name) for name in _COPIES),
    )
    connection = op.get_bind()
    for seq, entry in connection.execute(sa.select(entries.c.seq, entries.c.entry)).all():
        values = json.loads(entry)
        connection.execute(
            entries.update()
            .where(entries.c.seq == seq)
            .values({name: values[name] for name in _COPIES})
        )
    for name in _COPIES:
        op.create_index(f"ix_audit_entries_{name}", "audit_entries", [name])
