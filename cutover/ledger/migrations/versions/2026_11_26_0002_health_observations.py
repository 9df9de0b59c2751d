"""Hourly aggregated health observations of retained systems.

Revision ID: 5e1f0c2a0002
Revises: 5e1f0c2a0001
Create Date: 2026-11-26 10:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0c2a0002"
down_revision: str | Sequence[str] | None = "5e1f0c2a0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create health_observations: one row per (system, check, hour)."""
    op.create_table(
        "health_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.String(128), nullable=False),
        sa.Column("check_name", sa.String(128), nullable=False),
        sa.Column("bucket_start", TIME, nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Double(), nullable=False),
        sa.Column("latency_max_ms", sa.Double(), nullable=False),
        sa.Column(
            "last_status",
            sa.Enum(
                "passed",
                "failed",
                name=op.f("ck_health_observations_probe_status"),
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("last_at", TIME, nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["system_id"], ["systems.id"], name=op.f("fk_health_observations_system_id_systems")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_observations")),
        sa.UniqueConstraint(
            "system_id",
            "check_name",
            "bucket_start",
            name=op.f("uq_health_observations_system_id_check_name_bucket_start"),
        ),
    )


def downgrade() -> None:
    """Drop health_observations (its rows are lost: they are a summary of probes)."""
    op.drop_table("health_observations")
