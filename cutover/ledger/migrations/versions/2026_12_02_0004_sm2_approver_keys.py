"""SM2 sign-off: approvers' public keys, approvers' parties, and signatures keeping their proof.

- ``approver_keys``: each approver's SM2 public keys, who enrolled them and when they were
  revoked (a replaced key is kept so old signatures still verify).
- ``approvers.party``; ``approvers.totp_secret_encrypted`` becomes nullable (an approver who signs
  with a key has no TOTP secret).
- ``signatures``: ``proof``, ``statement``, ``signature``, ``key_fingerprint`` and the unique
  ``statement_digest`` (a statement is accepted at most once, ever).

On SQLite a column cannot be made nullable in place, and rebuilding ``approvers`` the batch way
(copy, drop, rename) fails while ``signatures`` rows reference it with foreign keys on. So the
rebuild defers the foreign-key checks to the commit and fills the new table by INSERT, which
settles them. Downgrading gives approvers without a TOTP secret an empty one (they cannot use
TOTP until enrolled again) and drops the keys and the proofs.

Revision ID: 5e1f0c2a0004
Revises: 5e1f0c2a0003
Create Date: 2026-12-02 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0c2a0004"
down_revision: str | Sequence[str] | None = "5e1f0c2a0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
DIGEST = sa.String(100)
ID = sa.String(128)
_OLD_APPROVERS = "_approvers_before_0004"
_APPROVER_COLUMNS = "id, name, totp_secret_encrypted, enrolled_at, last_used_counter"
_SIGNATURE_COLUMNS = ("proof", "statement", "signature", "key_fingerprint", "statement_digest")


def _party(table: str) -> sa.Enum:
    return sa.Enum(
        "department",
        "cloud_provider",
        name=op.f(f"ck_{table}_party"),
        native_enum=False,
        create_constraint=True,
        length=32,
    )


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Add the approvers' party and keys, and the signatures' proof columns."""
    if _is_sqlite():
        _rebuild_approvers_on_sqlite(secret_nullable=True, with_party=True)
    else:
        op.add_column("approvers", sa.Column("party", _party("approvers"), nullable=True))
        op.alter_column("approvers", "totp_secret_encrypted", existing_type=sa.LargeBinary(), nullable=True)
    op.create_table(
        "approver_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("approver_id", ID, nullable=False),
        sa.Column("party", _party("approver_keys"), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("fingerprint", DIGEST, nullable=False),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("enrolled_at", TIME, nullable=False),
        sa.Column("enrolled_by", ID, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("revoked_by", ID, nullable=True),
        sa.ForeignKeyConstraint(["approver_id"], ["approvers.id"], name=op.f("fk_approver_keys_approver_id_approvers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approver_keys")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_approver_keys_fingerprint")),
    )
    op.create_index(op.f("ix_approver_keys_approver_id"), "approver_keys", ["approver_id"])
    with op.batch_alter_table("signatures") as batch:
        batch.add_column(sa.Column("proof", sa.String(16), nullable=True))
        batch.add_column(sa.Column("statement", sa.Text(), nullable=True))
        batch.add_column(sa.Column("signature", sa.Text(), nullable=True))
        batch.add_column(sa.Column("key_fingerprint", DIGEST, nullable=True))
        batch.add_column(sa.Column("statement_digest", DIGEST, nullable=True))
        batch.create_unique_constraint(op.f("uq_signatures_statement_digest"), ["statement_digest"])


def downgrade() -> None:
    """Drop the proofs and the keys; approvers without a TOTP secret get an empty one."""
    with op.batch_alter_table("signatures") as batch:
        batch.drop_constraint(op.f("uq_signatures_statement_digest"), type_="unique")
        for column in reversed(_SIGNATURE_COLUMNS):
            batch.drop_column(column)
    op.drop_index(op.f("ix_approver_keys_approver_id"), table_name="approver_keys")
    op.drop_table("approver_keys")
    op.execute(
        sa.text("UPDATE approvers SET totp_secret_encrypted = :empty WHERE totp_secret_encrypted IS NULL").bindparams(
            sa.bindparam("empty", b"", type_=sa.LargeBinary())
        )
    )
    if _is_sqlite():
        _rebuild_approvers_on_sqlite(secret_nullable=False, with_party=False)
    else:
        op.alter_column("approvers", "totp_secret_encrypted", existing_type=sa.LargeBinary(), nullable=False)
        op.drop_column("approvers", "party")


def _rebuild_approvers_on_sqlite(*, secret_nullable: bool, with_party: bool) -> None:
    """Recreate ``approvers`` with the given shape, keeping its rows and the references to them."""
    op.execute("PRAGMA defer_foreign_keys = ON")  # checked at commit; reset by SQLite then
    op.execute(f"CREATE TABLE {_OLD_APPROVERS} AS SELECT {_APPROVER_COLUMNS} FROM approvers")
    op.drop_table("approvers")
    columns: list[sa.Column[Any]] = [
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        *([sa.Column("party", _party("approvers"), nullable=True)] if with_party else []),
        sa.Column("totp_secret_encrypted", sa.LargeBinary(), nullable=secret_nullable),
        sa.Column("enrolled_at", TIME, nullable=False),
        sa.Column("last_used_counter", sa.BigInteger(), nullable=True),
    ]
    op.create_table("approvers", *columns, sa.PrimaryKeyConstraint("id", name=op.f("pk_approvers")))
    op.execute(f"INSERT INTO approvers ({_APPROVER_COLUMNS}) SELECT {_APPROVER_COLUMNS} FROM {_OLD_APPROVERS}")
    op.drop_table(_OLD_APPROVERS)
