"""Step executions keyed by what ran: attempts, step digests, and the database refusing edits.

Each step execution records the digest of the step definition that ran (``step_digest``) and its
``attempt``: a key executed again (its definition changed, or the earlier attempt did not
succeed) gets a new row, so the unique key becomes (run_id, step_id, attempt) and history stays.
Rows recorded before this revision keep ``step_digest`` NULL and never count as a result.

Like ``audit_events``, the table is protected by triggers: DELETE (and TRUNCATE) is refused, and
so is every UPDATE but the one that finishes a started row without touching what identifies it.

Revision ID: 5e1f0c2a0003
Revises: 5e1f0c2a0002
Create Date: 2026-12-02 09:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0c2a0003"
down_revision: str | Sequence[str] | None = "5e1f0c2a0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "step_executions"
OLD_UNIQUE = "uq_step_executions_run_id_step_id"
NEW_UNIQUE = "uq_step_executions_run_id_step_id_attempt"

#: What identifies an execution; the finishing UPDATE may not change any of it.
_IDENTITY = ("id", "run_id", "step_id", "attempt", "system_id", "phase", "host", "step_digest", "started_at")
_HINT = (
    "step executions are what a resumed run trusts: a finished one is never changed and none is "
    "deleted; a step run again is recorded as a new attempt"
)

_SQLITE_CHANGED = " OR ".join(f"NEW.{column} IS NOT OLD.{column}" for column in _IDENTITY)
_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER step_executions_refuse_update BEFORE UPDATE ON {TABLE} "
    f"WHEN OLD.finished_at IS NOT NULL OR NEW.finished_at IS NULL OR {_SQLITE_CHANGED} BEGIN "
    f"SELECT RAISE(ABORT, 'step_executions: UPDATE refused ({_HINT})'); END",
    f"CREATE TRIGGER step_executions_refuse_delete BEFORE DELETE ON {TABLE} BEGIN "
    f"SELECT RAISE(ABORT, 'step_executions: DELETE refused ({_HINT})'); END",
)
_POSTGRES_TRIGGERS = (
    f"""CREATE FUNCTION step_executions_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL
            AND ROW({", ".join(f"NEW.{c}" for c in _IDENTITY)})
                IS NOT DISTINCT FROM ROW({", ".join(f"OLD.{c}" for c in _IDENTITY)}) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'restrict_violation',
        MESSAGE = 'step_executions: ' || TG_OP || ' refused',
        HINT = '{_HINT}';
END
$$""",
    f"CREATE TRIGGER step_executions_refuse_update_delete BEFORE UPDATE OR DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION step_executions_refuse_change()",
    f"CREATE TRIGGER step_executions_refuse_truncate BEFORE TRUNCATE ON {TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION step_executions_refuse_change()",
)


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Add attempt and step_digest, key executions by attempt, and protect the table."""
    op.add_column(TABLE, sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.add_column(TABLE, sa.Column("step_digest", sa.String(100), nullable=True))
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f(OLD_UNIQUE), type_="unique")
        batch.create_unique_constraint(op.f(NEW_UNIQUE), ["run_id", "step_id", "attempt"])
    for statement in _SQLITE_TRIGGERS if _is_sqlite() else _POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    """Drop the triggers, keep only each key's newest attempt (older ones are lost), drop the columns."""
    if _is_sqlite():
        op.execute("DROP TRIGGER IF EXISTS step_executions_refuse_update")
        op.execute("DROP TRIGGER IF EXISTS step_executions_refuse_delete")
    else:
        op.execute("DROP FUNCTION IF EXISTS step_executions_refuse_change() CASCADE")
    op.execute(
        f"DELETE FROM {TABLE} WHERE EXISTS (SELECT 1 FROM {TABLE} AS newer "
        f"WHERE newer.run_id = {TABLE}.run_id AND newer.step_id = {TABLE}.step_id "
        f"AND newer.attempt > {TABLE}.attempt)"
    )
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f(NEW_UNIQUE), type_="unique")
        batch.create_unique_constraint(op.f(OLD_UNIQUE), ["run_id", "step_id"])
        batch.drop_column("step_digest")
        batch.drop_column("attempt")
