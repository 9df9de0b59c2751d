"""The ledger: the source of truth for every system, run, step, signature and audit event.

Public surface::

    Ledger(url, *, digest="sm3", clock=None)      Ledger.from_settings(settings=None)
      .migrate()  .session()  .now()  .dispose()  .engine  .digest  .safe_url
      systems     get_system  require_system  list_systems  upsert_system  compare_and_set_state
                  set_plan_entry  get_plan_entry  list_plan_entries
      runs        create_run  get_run  finish_run  running_run_for  list_runs
      steps       begin_step(step_digest=...) -> StepClaim  finish_step  get_step  list_steps
                  (keyed by run id, step key and attempt; cutover.executions adds the audit events)
      locks       acquire_lock  release_lock  get_lock  override_lock
      sign-off    create_report  get_report  latest_report  void_reports
                  add_signature(proof=, statement=, signature=, key_fingerprint=)  signatures_for
                  void_signatures  statement_digest  find_signature_by_statement_digest
                  enroll_approver  get_approver  list_approvers  consume_totp_counter
      SM2 keys    add_approver_key  revoke_approver_key  active_approver_key
                  approver_key_by_fingerprint  approver_keys   (cutover.approvers adds the audit)
      watching    open_retention_window  current_retention_window  close_retention_window
                  list_open_retention_windows  record_health(HealthProbe...)
                  claim_probes(ProbeClaim...)   (the hand-over lease between watch runs)
                  consecutive_failures  health_history  record_stress_result  latest_stress_result
      divergence  record_divergence_baseline  divergence_baseline
                  record_divergence(DivergenceRecord)  latest_divergence  latest_divergences
      office      register_plan_items(PlanItem...)  set_roadmap  get_roadmap  list_roadmaps  add_exemption_ruling  exemption_rulings
    ledger_of(session)                 the Ledger that opened a session
    plain_json(value)                  a value as the ledger stores JSON (datetimes, enums made plain)
    step_record_digest(record, algorithm)   what the audit trail records of a step execution row
    alembic_config, migration_heads, upgrade, downgrade, current_revision   migrations
    ORM rows: System PlanEntry Run StepExecution Report Signature Approver ApproverKey
              RetentionWindow Lock HealthObservation StressResult AuditEvent AuditChainHead
              DivergenceBaseline DivergenceSample Roadmap ExemptionRuling
    enums: LifecycleState Disposition RunKind RunState StepPhase StepStatus ReportKind Party
           Decision RetentionCloseReason ProbeStatus AuditOutcome
           RoadmapStatus ExemptionDecision

Methods taking ``session=`` join that transaction; otherwise each runs its own. Database errors
surface as :class:`cutover.errors.LedgerError`. The audit trail is written by :mod:`cutover.audit`.
"""

from cutover.ledger._core import ledger_of, plain_json
from cutover.ledger._divergence import DivergenceRecord
from cutover.ledger._engine import (
    alembic_config,
    current_revision,
    downgrade,
    migration_heads,
    upgrade,
)
from cutover.ledger._enums import (
    AuditOutcome,
    Decision,
    Disposition,
    ExemptionDecision,
    LifecycleState,
    Party,
    ProbeStatus,
    ReportKind,
    RetentionCloseReason,
    RoadmapStatus,
    RunKind,
    RunState,
    StepPhase,
    StepStatus,
)
from cutover.ledger._ledger import Ledger
from cutover.ledger._models import (
    Approver,
    ApproverKey,
    AuditChainHead,
    AuditEvent,
    Base,
    DivergenceBaseline,
    DivergenceSample,
    ExemptionRuling,
    HealthObservation,
    Lock,
    PlanEntry,
    Report,
    RetentionWindow,
    Roadmap,
    Run,
    Signature,
    StepExecution,
    StressResult,
    System,
)
from cutover.ledger._roadmap import ADAPTATION_ITEMS, ROADMAP_FIELDS, PlanItem, PlanOutcome
from cutover.ledger._runs import StepClaim, step_record_digest
from cutover.ledger._systems import SystemUpsert
from cutover.ledger._watch import YIELD_AFTER, HealthProbe, ProbeClaim

__all__ = [
    "ADAPTATION_ITEMS",
    "ROADMAP_FIELDS",
    "YIELD_AFTER",
    "Approver",
    "ApproverKey",
    "AuditChainHead",
    "AuditEvent",
    "AuditOutcome",
    "Base",
    "Decision",
    "Disposition",
    "DivergenceBaseline",
    "DivergenceRecord",
    "DivergenceSample",
    "ExemptionDecision",
    "ExemptionRuling",
    "HealthObservation",
    "HealthProbe",
    "Ledger",
    "LifecycleState",
    "Lock",
    "Party",
    "PlanEntry",
    "PlanItem",
    "PlanOutcome",
    "ProbeClaim",
    "ProbeStatus",
    "Report",
    "ReportKind",
    "RetentionCloseReason",
    "RetentionWindow",
    "Roadmap",
    "RoadmapStatus",
    "Run",
    "RunKind",
    "RunState",
    "Signature",
    "StepClaim",
    "StepExecution",
    "StepPhase",
    "StepStatus",
    "StressResult",
    "System",
    "SystemUpsert",
    "alembic_config",
    "current_revision",
    "downgrade",
    "ledger_of",
    "migration_heads",
    "plain_json",
    "step_record_digest",
    "upgrade",
]
