"""The relational schema, shared by every backend (SQLite and PostgreSQL).

Alembic migrations in ``storage/migrations`` create and evolve these tables; a test
checks that the migrated database matches this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

principals = Table(
    "principals",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(64), nullable=False),
    Column("attributes", JSON, nullable=False),
    # HMAC-SHA256 of the client secret under a workspace key; the secret itself is never stored.
    Column("secret_hash", String(64), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    # The public JWK of a private_key_jwt client (RFC 7523); None for secret-only clients.
    Column("public_jwk", JSON, nullable=True),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("version", String(64), nullable=False),
    Column("format", String(32), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("signature", JSON, nullable=False),
    Column("output_policy", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("input_policy", JSON, nullable=True),
    Column("robustness", JSON, nullable=True),
    Column("risk_tier", String(16), nullable=True),
    Column("classification", String(16), nullable=True),
    Column("signer", String(64), nullable=True),
    Column("stage", String(16), nullable=False, server_default="staging"),
    UniqueConstraint("name", "version", name="uq_models_name_version"),
)

keyrings = Table(
    "keyrings",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("primary_version", Integer, nullable=False),
    Column("min_decryption_version", Integer, nullable=False),
)

key_versions = Table(
    "key_versions",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", Float, nullable=False),
    # Data keys wrapped (counted in reservations ahead of use), to rotate before GCM limits.
    Column("wraps", BigInteger, nullable=False),
)

# Every object Bastion stores encrypted: v1 envelopes, plaintext never stored.
blobs = Table(
    "blobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_version", Integer, nullable=False, index=True),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("namespace", "name", name="uq_blobs_namespace_name"),
)

# API keys: the secret is stored only as a keyed hash.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("actions", JSON, nullable=False),
    Column("models", JSON, nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
)

# Revoked access tokens (RFC 7009), until their own expiry.
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
)

# Spent private_key_jwt assertion ids (SHA-256 of client id and jti), until they expire.
client_assertions = Table(
    "client_assertions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
)

# The audit log: leaf i of an RFC 6962 Merkle tree is SHA-256(0x00 ‖ entry of seq i).
# Every column is the hashed entry, its place in the tree, or a cache derived from the entry
# and checked wherever it is read: no column outside the hashed bytes (search reads those).
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("entry", Text, nullable=False),  # canonical JSON, exactly the bytes hashed
    Column("leaf_hash", LargeBinary, nullable=False),  # SHA-256(0x00 ‖ entry), checked on read
)

# Signed checkpoints: ``note`` is the signed statement; size and root repeat it (verify
# checks they do), and ``frontier`` (the right edge of the tree, whose root must be the
# signed root) lets the next process extend the tree without rereading it.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("time", Float, nullable=False),  # when it was signed; informational, not signed
    Column("frontier", LargeBinary, nullable=True),
)

# Reversible tokenization: each value encrypted (AES-256-GCM, bound to its token) and
# found again by a keyed hash, so equal values in one field share one token.
vault_tokens = Table(
    "vault_tokens",
    metadata,
    Column("token", String(40), primary_key=True),
    Column("field", String(64), nullable=False),
    Column("lookup", String(64), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("field", "lookup", name="uq_vault_tokens_field_lookup"),
)

# Differential-privacy budgets: one row per (dataset, principal); principal "*" is the
# dataset's budget across everyone. Spending is one conditional UPDATE (never overspends).
privacy_budgets = Table(
    "privacy_budgets",
    metadata,
    Column("dataset", String(64), primary_key=True),
    Column("principal", String(64), primary_key=True),
    Column("epsilon_total", Float, nullable=False),
    Column("delta_total", Float, nullable=False),
    Column("epsilon_spent", Float, nullable=False),
    Column("delta_spent", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Every charge against a budget, in order: what was asked, by whom, at what cost.
privacy_charges = Table(
    "privacy_charges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("dataset", String(64), nullable=False, index=True),
    Column("principal", String(64), nullable=False, index=True),
    Column("query", String(200), nullable=False),
    Column("epsilon", Float, nullable=False),
    Column("delta", Float, nullable=False),
)
