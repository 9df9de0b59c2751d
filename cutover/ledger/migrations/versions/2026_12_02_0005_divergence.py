"""Divergence: what the cloud copy looked like at cutover, and how far it has moved since.

- ``divergence_baselines``: one row per cutover run, recorded after its data verification — per
  table PostgreSQL's row counters, or chunked checksums by key.
- ``divergence_samples``: the watch's measurements, one row per system and hour (the newest
  sample of the hour wins), so months of watching stay small.

Revision ID: 5e1f0c2a0005
Revises: 5e1f0c2a0004
Create Date: 2026-12-02 13:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0c2a0005"
down_revision: str | Sequence[str] | None = "5e1f0c2a0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
ID = sa.String(128)
RUN_ID = sa.String(36)


def upgrade() -> None:
    """Create the baselines and the samples."""
    op.create_table(
        "divergence_baselines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("cutover_run_id", RUN_ID, nullable=False),
        sa.Column("taken_at", TIME, nullable=False),
        sa.Column("tables", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["systems.id"], name=op.f("fk_divergence_baselines_system_id_systems")),
        sa.ForeignKeyConstraint(
            ["cutover_run_id"], ["cutover_runs.id"], name=op.f("fk_divergence_baselines_cutover_run_id_cutover_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_divergence_baselines")),
        sa.UniqueConstraint("cutover_run_id", name=op.f("uq_divergence_baselines_cutover_run_id")),
    )
    op.create_index(op.f("ix_divergence_baselines_system_id"), "divergence_baselines", ["system_id"])
    op.create_table(
        "divergence_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("cutover_run_id", RUN_ID, nullable=False),
        sa.Column("bucket_start", TIME, nullable=False),
        sa.Column("taken_at", TIME, nullable=False),
        sa.Column("changed_rows", sa.BigInteger(), nullable=True),
        sa.Column("approximate", sa.Boolean(), nullable=False),
        sa.Column("lag_bytes", sa.BigInteger(), nullable=True),
        sa.Column("behind_s", sa.Double(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["systems.id"], name=op.f("fk_divergence_samples_system_id_systems")),
        sa.ForeignKeyConstraint(
            ["cutover_run_id"], ["cutover_runs.id"], name=op.f("fk_divergence_samples_cutover_run_id_cutover_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_divergence_samples")),
        sa.UniqueConstraint("system_id", "bucket_start", name=op.f("uq_divergence_samples_system_id_bucket_start")),
    )


def downgrade() -> None:
    """Drop the samples and the baselines."""
    op.drop_table("divergence_samples")
    op.drop_index(op.f("ix_divergence_baselines_system_id"), table_name="divergence_baselines")
    op.drop_table("divergence_baselines")
