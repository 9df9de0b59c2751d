"""Initial ledger schema, with the database refusing UPDATE and DELETE on audit events.

Revision ID: 5e1f0c2a0001
Revises:
Create Date: 2026-11-26 10:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0c2a0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
DIGEST = sa.String(100)
ID = sa.String(128)
RUN_ID = sa.String(36)

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_events_refuse_update BEFORE UPDATE ON audit_events BEGIN "
    "SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused "
    "(the audit trail cannot be edited)'); END",
    "CREATE TRIGGER audit_events_refuse_delete BEFORE DELETE ON audit_events BEGIN "
    "SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused "
    "(purging old events is a DBA procedure, see cutover.audit.purge_before)'); END",
)
_POSTGRES_TRIGGERS = (
    """CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'restrict_violation',
        MESSAGE = 'audit_events is append-only: ' || TG_OP || ' refused',
        HINT = 'the audit trail cannot be edited; purging old events is a DBA procedure '
            || '(see cutover.audit.purge_before)';
END
$$""",
    "CREATE TRIGGER audit_events_refuse_update_delete BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()",
    "CREATE TRIGGER audit_events_refuse_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()",
)


def _enum(table: str, name: str, *values: str) -> sa.Enum:
    return sa.Enum(
        *values, name=op.f(f"ck_{table}_{name}"), native_enum=False, create_constraint=True, length=32
    )


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    name = op.f(f"fk_{table}_{column}_{target.split('.')[0]}")
    return sa.ForeignKeyConstraint([column], [target], name=name)


def _index(table: str, column: str) -> None:
    op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def upgrade() -> None:
    """Create every table but health_observations, the chain head row and the audit triggers."""
    _create_systems()
    _create_runs()
    _create_signoff()
    _create_watch()
    _create_audit()
    _create_triggers()


def _create_systems() -> None:
    op.create_table(
        "systems",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("department", sa.String(256), nullable=False),
        sa.Column(
            "disposition",
            _enum("systems", "disposition", "migrate", "consolidate", "retire", "exempt"),
            nullable=False,
        ),
        sa.Column(
            "state",
            _enum(
                "systems", "lifecycle_state", "planned", "tested", "report_ready", "signed",
                "rejected", "cutting_over", "retained", "rolled_back", "decommissioned",
                "compensated", "rollback_incomplete",
            ),
            nullable=False,
        ),
        sa.Column("spec_digest", DIGEST, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        _pk("systems", "id"),
    )
    op.create_table(
        "plan_entries",
        sa.Column("system_id", ID, nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        _fk("plan_entries", "system_id", "systems.id"),
        _pk("plan_entries", "system_id"),
    )


def _run_kind(table: str) -> sa.Enum:
    return _enum(table, "run_kind", "cutover", "rollback", "decommission")


def _create_runs() -> None:
    op.create_table(
        "cutover_runs",
        sa.Column("id", RUN_ID, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("kind", _run_kind("cutover_runs"), nullable=False),
        sa.Column("flow_run_id", RUN_ID, nullable=True),
        sa.Column(
            "state",
            _enum(
                "cutover_runs", "run_state",
                "running", "succeeded", "failed", "compensated", "incomplete",
            ),
            nullable=False,
        ),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("reverses_run_id", RUN_ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _fk("cutover_runs", "reverses_run_id", "cutover_runs.id"),
        _fk("cutover_runs", "system_id", "systems.id"),
        _pk("cutover_runs", "id"),
    )
    _index("cutover_runs", "system_id")
    op.create_table(
        "step_executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("step_id", ID, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column(
            "phase",
            _enum(
                "step_executions", "step_phase", "stress_test", "internal_test", "cutover",
                "health_gate", "undo", "rollback", "decommission",
            ),
            nullable=False,
        ),
        sa.Column("host", ID, nullable=True),
        sa.Column(
            "status",
            _enum(
                "step_executions", "step_status", "started", "succeeded", "failed", "unknown",
                "undone", "undo_failed", "skipped",
            ),
            nullable=False,
        ),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("output_tail", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        _fk("step_executions", "run_id", "cutover_runs.id"),
        _fk("step_executions", "system_id", "systems.id"),
        _pk("step_executions", "id"),
        sa.UniqueConstraint("run_id", "step_id", name=op.f("uq_step_executions_run_id_step_id")),
    )
    _index("step_executions", "system_id")
    op.create_table(
        "locks",
        sa.Column("system_id", ID, nullable=False),
        sa.Column("holder_run_id", RUN_ID, nullable=False),
        sa.Column("kind", _run_kind("locks"), nullable=False),
        sa.Column("acquired_at", TIME, nullable=False),
        _fk("locks", "holder_run_id", "cutover_runs.id"),
        _fk("locks", "system_id", "systems.id"),
        _pk("locks", "system_id"),
    )


def _create_signoff() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column(
            "kind", _enum("reports", "report_kind", "trial_run", "decommission"), nullable=False
        ),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("voided_at", TIME, nullable=True),
        _fk("reports", "run_id", "cutover_runs.id"),
        _fk("reports", "system_id", "systems.id"),
        _pk("reports", "id"),
    )
    _index("reports", "run_id")
    _index("reports", "system_id")
    op.create_table(
        "approvers",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("totp_secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("enrolled_at", TIME, nullable=False),
        sa.Column("last_used_counter", sa.BigInteger(), nullable=True),
        _pk("approvers", "id"),
    )
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column(
            "party", _enum("signatures", "party", "department", "cloud_provider"), nullable=False
        ),
        sa.Column("approver_id", ID, nullable=False),
        sa.Column(
            "decision", _enum("signatures", "decision", "approve", "reject"), nullable=False
        ),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("report_digest", DIGEST, nullable=False),
        sa.Column("spec_digest", DIGEST, nullable=False),
        sa.Column("signed_at", TIME, nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("voided_at", TIME, nullable=True),
        _fk("signatures", "approver_id", "approvers.id"),
        _fk("signatures", "run_id", "cutover_runs.id"),
        _fk("signatures", "system_id", "systems.id"),
        _pk("signatures", "id"),
    )
    _index("signatures", "run_id")
    _index("signatures", "system_id")


def _create_watch() -> None:
    op.create_table(
        "retention_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("cutover_run_id", RUN_ID, nullable=False),
        sa.Column("opened_at", TIME, nullable=False),
        sa.Column("ends_at", TIME, nullable=False),
        sa.Column("closed_at", TIME, nullable=True),
        sa.Column(
            "close_reason",
            _enum("retention_windows", "close_reason", "rolled_back", "decommissioned"),
            nullable=True,
        ),
        _fk("retention_windows", "cutover_run_id", "cutover_runs.id"),
        _fk("retention_windows", "system_id", "systems.id"),
        _pk("retention_windows", "id"),
    )
    _index("retention_windows", "system_id")
    op.create_table(
        "stress_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        _fk("stress_results", "run_id", "cutover_runs.id"),
        _fk("stress_results", "system_id", "systems.id"),
        _pk("stress_results", "id"),
    )
    _index("stress_results", "run_id")
    _index("stress_results", "system_id")


def _create_audit() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", ID, nullable=False),
        sa.Column("action", ID, nullable=False),
        sa.Column("object", sa.String(256), nullable=False),
        sa.Column(
            "outcome",
            _enum("audit_events", "audit_outcome", "started", "succeeded", "failed", "refused"),
            nullable=False,
        ),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_digest", DIGEST, nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        _pk("audit_events", "seq"),
        sa.UniqueConstraint("digest", name=op.f("uq_audit_events_digest")),
    )
    _index("audit_events", "object")
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("anchor_seq", sa.Integer(), nullable=False),
        sa.Column("anchor_digest", DIGEST, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        _pk("audit_chain_head", "id"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "digest": "", "anchor_seq": 0, "anchor_digest": ""}])


def _create_triggers() -> None:
    dialect = op.get_bind().dialect.name
    statements = _SQLITE_TRIGGERS if dialect == "sqlite" else _POSTGRES_TRIGGERS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    """Drop everything the upgrade created (the audit trail with it: back it up first)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_events_refuse_change() CASCADE")
    for table in (
        "audit_chain_head", "audit_events", "stress_results", "retention_windows",
        "signatures", "approvers", "reports", "locks", "step_executions", "cutover_runs",
        "plan_entries", "systems",
    ):
        op.drop_table(table)
