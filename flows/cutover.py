"""The cutover flow: the notice's mandated sequence for one information system, top to bottom.

    test on the test platform → trial-run report → joint sign-off → cutover → retention window

Run it as a Prefect deployment (the sign-off suspends the run until both parties sign, holding no
worker). Every stage is idempotent against the ledger: a run resumed after the sign-off, or
started again with ``resume=True`` after its worker died, continues where it was and repeats
no completed step.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow

from cutover import claims, lifecycle
from cutover.errors import CutoverError, SignOffExpired, SignOffRejected, TestPlatformError, TrialRunNotOver
from cutover.ledger import Ledger, LifecycleState, RunKind, RunState
from cutover.runtime import find_spec, open_ledger, register
from cutover.secrets import redact
from cutover.spec import Spec
from flows._context import RunContext, current_flow_run_id, holder_state
from flows._cut import cut_over, record_and_open_retention
from flows._signoff import joint_signoff
from flows._test_platform import test_on_test_platform
from tasks.ssh import close_connections

_NEW_ATTEMPT_FROM = {LifecycleState.COMPENSATED, LifecycleState.ROLLED_BACK, LifecycleState.REJECTED}


@flow(name="cutover", flow_run_name="cutover-{system_id}", persist_result=True, log_prints=False)
def cutover(system_id: str, resume: bool = False, actor: str = "ops") -> str:
    """Test, report, sign off, cut over and open the retention window for ``system_id``."""
    rc = begin(system_id, resume=resume, actor=actor)
    try:
        report = test_on_test_platform(rc)
        joint_signoff(rc, report)
        outcome = cut_over(rc)
        ends = record_and_open_retention(rc, outcome)
    except TrialRunNotOver as waiting:
        return come_back_during_trial_run(rc, waiting)
    except CutoverError as exc:
        stop(rc, exc)
        raise
    finally:
        close_connections(rc.run.id)
    claims.release(rc.ledger, rc.system_id, rc.run.id)
    if ends is None:
        raise CutoverError(f"cutover of {system_id} did not complete: {outcome.summary()}")
    return f"{system_id} cut over; the original is retained until {ends:%Y-%m-%d} (rollback stays possible until then)"


def begin(system_id: str, *, resume: bool, actor: str) -> RunContext:
    """Load the spec, register the system, and claim it for this run."""
    path, spec = find_spec(system_id)
    ledger = open_ledger()
    _restart_if_needed(ledger, spec, actor)
    run = claims.claim(
        ledger,
        spec.system.id,
        RunKind.CUTOVER,
        actor=actor,
        flow_run_id=current_flow_run_id(),
        resume=resume,
        holder_state=holder_state,
    ).run
    return RunContext(spec=spec, spec_path=path, ledger=ledger, run=run, actor=actor)


def _restart_if_needed(ledger: Ledger, spec: Spec, actor: str) -> None:
    system = ledger.get_system(spec.system.id)
    if system is not None and system.state in _NEW_ATTEMPT_FROM:
        lifecycle.transition(
            ledger,
            spec.system.id,
            LifecycleState.PLANNED,
            actor=actor,
            reason=f"new attempt after {system.state.value}",
            expected=system.state,
        )
    register(ledger, spec, actor=actor)  # a changed spec voids the report and signatures (lifecycle.register_system)


def come_back_during_trial_run(rc: RunContext, waiting: TrialRunNotOver) -> str:
    """Schedule this deployment's next visit (a short run that samples health) and end, holding no worker."""
    from prefect.deployments import run_deployment
    from prefect.runtime import deployment, flow_run

    platform = rc.spec.test_platform
    assert platform is not None
    visit = min(
        waiting.until, rc.ledger.now() + min(max(platform.trial_run / 48, timedelta(minutes=1)), timedelta(hours=1))
    )
    if deployment.name is None:
        stop(
            rc,
            TestPlatformError(
                f"{waiting}; run the cutover of {rc.system_id} again after that (run as a deployment, it comes back by itself)"
            ),
        )
        raise TestPlatformError(f"{waiting}; run the cutover again after that")
    name = f"{flow_run.flow_name}/{deployment.name}"
    run_deployment(
        name, parameters={"system_id": rc.system_id, "resume": True, "actor": rc.actor}, scheduled_time=visit, timeout=0
    )
    message = (
        f"{waiting}: the tests passed; the next visit of the trial run is scheduled for {visit:%Y-%m-%d %H:%M:%S} UTC"
    )
    rc.log(message)
    return message


def stop(rc: RunContext, exc: CutoverError) -> None:
    """The run ends without cutover: record why, move the lifecycle if the notice says so, free the system."""
    state = lifecycle.current_state(rc.ledger, rc.system_id)
    if isinstance(exc, SignOffRejected) and state is LifecycleState.REPORT_READY:
        lifecycle.transition(rc.ledger, rc.system_id, LifecycleState.REJECTED, actor=rc.actor, reason=redact(str(exc)))
    elif isinstance(exc, SignOffExpired) and state is LifecycleState.REPORT_READY:
        lifecycle.transition(rc.ledger, rc.system_id, LifecycleState.TESTED, actor=rc.actor, reason=redact(str(exc)))
    run = rc.ledger.get_run(rc.run.id)
    if run is not None and run.finished_at is None:
        rc.ledger.finish_run(rc.run.id, RunState.FAILED, note=redact(str(exc)))
    claims.release(rc.ledger, rc.system_id, rc.run.id)
    rc.log(f"stopped without cutover: {exc}")
