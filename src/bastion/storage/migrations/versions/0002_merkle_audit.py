"""Replace the hash-chained audit records by the entries of a Merkle-tree log.

Existing records become the first entries, in their order, each re-encoded in the
entry format of bastion.audit and hashed as an RFC 6962 leaf.

Revision ID: 0002
Revises: 0001
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    entries = op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("event", sa.String(48), nullable=False),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_audit_entries_time", "audit_entries", ["time"])
    op.create_index("ix_audit_entries_event", "audit_entries", ["event"])
    op.create_index("ix_audit_entries_principal", "audit_entries", ["principal"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
    )
    old = sa.table(
        "audit_records",
        *(
            sa.column(name)
            for name in (
                "seq",
                "time",
                "request_id",
                "principal",
                "action",
                "resource",
                "decision",
                "policy_ids",
                "status",
                "latency_ms",
                "input_sha256",
                "reason",
            )
        ),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(old).order_by(old.c.seq)).mappings().all()
    migrated = []
    for index, row in enumerate(rows):
        policy_ids = row["policy_ids"]
        if isinstance(policy_ids, str):
            policy_ids = json.loads(policy_ids)
        entry = {
            "event": "migrated",
            "time": row["time"],
            "request_id": row["request_id"],
            "principal": row["principal"],
            "auth_method": "",
            "source": "",
            "route": "",
            "action": row["action"],
            "resource": row["resource"],
            "decision": row["decision"],
            "policy_ids": list(policy_ids),
            "status": row["status"],
            "latency_ms": row["latency_ms"],
            "input_sha256": row["input_sha256"],
            "input_bytes": 0,
            "output_sha256": "",
            "output_bytes": 0,
            "reason": row["reason"],
        }
        text = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        migrated.append(
            {
                "seq": index,
                "time": row["time"],
                "event": "migrated",
                "principal": row["principal"],
                "entry": text,
                "leaf_hash": hashlib.sha256(b"\x00" + text.encode()).digest(),
            }
        )
    if migrated:
        connection.execute(entries.insert(), migrated)
    op.drop_table("audit_records")


def downgrade() -> None:
    # Deliberately one-way: turning a Merkle log back into a chain would drop its proofs.
    raise RuntimeError("The Merkle audit log cannot be turned back into a hash chain.")
