"""The leading-group office's view: each system's roadmap, and the expert panel's exemption rulings.

- ``roadmaps``: one row per system, from the plan table (``cutover plan import``) or its spec:
  planned dates (test, sign-off, cutover, end of retention, decommission), the network move and
  each adaptation item with its status, the telecom operator, the reason a system cannot move.
- ``exemption_rulings``: the panel's rulings (accepted or refused, date, members, document number).

Revision ID: 7d17a0c1e001
Revises: 5e1f0c2a0005
Create Date: 2026-12-07 17:01:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d17a0c1e001"
down_revision: str | Sequence[str] | None = "5e1f0c2a0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
ID = sa.String(128)
_STATUSES = ("not_needed", "not_started", "in_progress", "done")


def _enum(table: str, name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=op.f(f"ck_{table}_{name}"), native_enum=False, create_constraint=True, length=32)


def _status(column: str) -> sa.Column[str]:
    return sa.Column(column, _enum("roadmaps", f"{column}_status", *_STATUSES), nullable=False)


def upgrade() -> None:
    """Create the roadmaps and the exemption rulings."""
    op.create_table(
        "roadmaps",
        sa.Column("system_id", ID, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("test_on", sa.Date(), nullable=True),
        sa.Column("signoff_on", sa.Date(), nullable=True),
        sa.Column("cutover_on", sa.Date(), nullable=True),
        sa.Column("retention_ends_on", sa.Date(), nullable=True),
        sa.Column("decommission_on", sa.Date(), nullable=True),
        _status("network_move"),
        _status("code_optimisation"),
        _status("database_update"),
        _status("os_upgrade"),
        sa.Column("operator", sa.String(256), nullable=True),
        sa.Column("exemption_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["systems.id"], name=op.f("fk_roadmaps_system_id_systems")),
        sa.PrimaryKeyConstraint("system_id", name=op.f("pk_roadmaps")),
    )
    op.create_table(
        "exemption_rulings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("decision", _enum("exemption_rulings", "exemption_decision", "accepted", "refused"), nullable=False),
        sa.Column("ruled_on", sa.Date(), nullable=False),
        sa.Column("panel", sa.JSON(), nullable=False),
        sa.Column("document", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.Column("recorded_by", ID, nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["systems.id"], name=op.f("fk_exemption_rulings_system_id_systems")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exemption_rulings")),
    )
    op.create_index(op.f("ix_exemption_rulings_system_id"), "exemption_rulings", ["system_id"])


def downgrade() -> None:
    """Drop the rulings and the roadmaps."""
    op.drop_index(op.f("ix_exemption_rulings_system_id"), table_name="exemption_rulings")
    op.drop_table("exemption_rulings")
    op.drop_table("roadmaps")
