"""Stage 2–3 of the notice: stress and internal tests on the test platform, the trial run, the report.

The spec's ``test_platform.prepare`` steps (copy the data, start the app) run first, in order, each
recorded in the ledger under the run like every step: a re-run of the same run replays those that
succeeded instead of repeating them. Idempotent against the ledger: a system already
``report_ready`` (or further) with a valid report is not tested again, so a flow resumed after its sign-off wait, or redeployed with changed
code, never re-runs the stress test. A missed threshold or a failed internal test stops the
sequence with the reason, and the lifecycle stays where it was.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from cutover import lifecycle
from cutover.errors import CutoverError, TestPlatformError, TrialRunNotOver
from cutover.ledger import LifecycleState, Report, ReportKind, StepPhase
from cutover.spec import HttpCheckStep, SshStep, TestPlatform
from flows._context import RunContext
from tasks.health import Probe, probe
from tasks.loadtest import StressResult, stress_test
from tasks.report import (
    InternalTestResult,
    PartiesRef,
    PartyRef,
    ReportEvidence,
    SystemRef,
    TestEnvironment,
    TrialRunHealth,
    artifact_key,
    publish_report,
    record_published,
    render_report,
    summarize,
    write_report,
)
from tasks.steps import StepResult, execute_step

_SAMPLE_PROBES = 5
READY_OR_LATER = {LifecycleState.REPORT_READY, LifecycleState.SIGNED, LifecycleState.CUTTING_OVER}


def test_on_test_platform(rc: RunContext) -> Report:
    """Return the current trial-run report, producing it (tests, trial run, report) when needed."""
    state = lifecycle.current_state(rc.ledger, rc.system_id)
    existing = rc.ledger.latest_report(rc.system_id, ReportKind.TRIAL_RUN)
    if state in READY_OR_LATER and existing is not None:
        rc.log(f"trial-run report already issued ({existing.digest}); the tests are not run again")
        return existing
    platform = _platform(rc)
    if state is LifecycleState.PLANNED:
        stress, internal = run_tests(rc, platform)
        lifecycle.transition(
            rc.ledger, rc.system_id, LifecycleState.TESTED, actor=rc.actor, reason="stress and internal tests passed"
        )
    else:
        stress, internal = _recorded_tests(rc, platform)
    health = trial_run(rc, platform)
    return issue_report(rc, platform, stress, internal, health)


def _platform(rc: RunContext) -> TestPlatform:
    if rc.spec.test_platform is None:
        raise TestPlatformError(
            f"{rc.spec_path}: system {rc.system_id} has no test_platform section; add one to test it"
        )
    return rc.spec.test_platform


# ---------------------------------------------------------------------------------- tests
def run_tests(rc: RunContext, platform: TestPlatform) -> tuple[StressResult, list[InternalTestResult]]:
    """Prepare the platform, stress test, then internal tests; raise with the reason if one does not pass."""
    for step in platform.prepare:
        prepare(rc, step)
    rc.log(f"stress test: {platform.stress.users} users against {platform.base_url} for {platform.stress.duration}")
    stress = stress_test(platform.stress, str(platform.base_url).rstrip("/"), rc.workdir / "stress")
    rc.ledger.record_stress_result(rc.run.id, rc.system_id, stress.model_dump(mode="json"), passed=stress.passed)
    stress.raise_for_verdict()
    return stress, [internal_test(rc, step) for step in platform.internal_tests]


def prepare(rc: RunContext, step: SshStep) -> StepResult:
    """Run one preparation step (recorded; replayed when this run already did it); raise TestPlatformError if it fails."""
    try:
        runner = _prepare_task.with_options(task_run_name=f"prepare-{step.id}")
        result: StepResult = runner(quote(rc), quote(step))  # type: ignore[call-overload]  # quote: Prefect must not walk these
    except CutoverError as exc:
        raise TestPlatformError(
            f"preparing the test platform failed at step {step.id} ({step.name}): {exc}; nothing was stress tested. "
            "Fix the cause and run the cutover again (steps this run completed are not repeated)"
        ) from exc
    done = "already done in this run, not repeated" if result.replayed else f"done in {result.duration_s:.2f} s"
    rc.log(f"test platform prepared by step {step.id} ({step.name}): {done}")
    return result


@task(name="prepare-test-platform", retries=0, timeout_seconds=900, cache_policy=NO_CACHE)
def _prepare_task(rc: RunContext, step: SshStep) -> StepResult:
    return execute_step(rc.steps(), step, phase=StepPhase.STRESS_TEST)


def internal_test(rc: RunContext, step: SshStep | HttpCheckStep) -> InternalTestResult:
    """Run one internal test and record it; raise TestPlatformError when it fails."""
    target = str(step.url) if isinstance(step, HttpCheckStep) else f"{step.host}: {' '.join(map(str, step.run))}"
    try:
        runner = _internal_task.with_options(task_run_name=f"internal-{step.id}")
        result = runner(quote(rc), quote(step))  # type: ignore[call-overload]  # quote: Prefect must not walk these
    except CutoverError as exc:
        raise TestPlatformError(f"internal test {step.id} ({step.name}) failed: {exc}") from exc
    rc.log(f"internal test {step.id} passed in {result.duration_s:.2f} s")
    return InternalTestResult(
        name=step.name, kind=step.kind, target=target, passed=True, duration_s=round(result.duration_s, 3)
    )


@task(name="internal-test", retries=0, timeout_seconds=600, cache_policy=NO_CACHE)
def _internal_task(rc: RunContext, step: SshStep | HttpCheckStep) -> StepResult:
    return execute_step(rc.steps(), step, phase=StepPhase.INTERNAL_TEST)


def _recorded_tests(rc: RunContext, platform: TestPlatform) -> tuple[StressResult, list[InternalTestResult]]:
    stored = rc.ledger.latest_stress_result(rc.system_id)
    if stored is None or not stored.passed:
        raise TestPlatformError(
            f"system {rc.system_id} is marked tested but the ledger holds no passing stress test; move it back to planned"
        )
    stress = StressResult.model_validate(stored.metrics)
    internal = [
        InternalTestResult(name=s.name, kind=s.kind, target="(recorded)", passed=True, duration_s=0.0)
        for s in platform.internal_tests
    ]
    return stress, internal


# ------------------------------------------------------------------------------ trial run
def trial_run(rc: RunContext, platform: TestPlatform) -> TrialRunHealth:
    """Health statistics of the trial-run period; raise TrialRunNotOver while it lasts.

    The period starts when the tests passed. While it lasts, each visit samples the test
    platform's health checks into the ledger (the flow then schedules its next visit and ends,
    holding no worker). A zero period (demos) samples a few probes now.
    """
    if platform.trial_run <= timedelta(0):
        now = rc.ledger.now()
        probes = [probe(check) for _ in range(_SAMPLE_PROBES) for check in platform.health]
        return _health_of(probes, now, now)
    stored = rc.ledger.latest_stress_result(rc.system_id)
    started = stored.created_at if stored is not None else rc.ledger.now()
    until = started + platform.trial_run
    if rc.ledger.now() < until:
        sample_trial_health(rc, platform)
        raise TrialRunNotOver(until)
    return _observed_health(rc, started, until)


def sample_trial_health(rc: RunContext, platform: TestPlatform) -> None:
    """Probe the test platform's health checks a few times and fold the results into the ledger."""
    from cutover.ledger import HealthProbe

    probes = [probe(check) for _ in range(_SAMPLE_PROBES) for check in platform.health]
    rc.ledger.record_health(HealthProbe(rc.system_id, f"trial:{p.check}", p.passed, p.latency_ms) for p in probes)
    rc.log(f"trial run: {sum(p.passed for p in probes)} of {len(probes)} health probes passed")


def _observed_health(rc: RunContext, start: datetime, end: datetime) -> TrialRunHealth:
    history = [h for h in rc.ledger.health_history(rc.system_id, since=start) if h.check_name.startswith("trial:")]
    checks = sum(h.checks for h in history)
    failures = sum(h.failures for h in history)
    return TrialRunHealth(
        checks=checks, failures=failures, p50_ms=None, p95_ms=None, period_start=start, period_end=end
    )


def _health_of(probes: list[Probe], start: datetime, end: datetime) -> TrialRunHealth:
    latencies = sorted(p.latency_ms for p in probes)
    p50 = statistics.median(latencies) if latencies else None
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None
    failures = sum(not p.passed for p in probes)
    return TrialRunHealth(
        checks=len(probes), failures=failures, p50_ms=p50, p95_ms=p95, period_start=start, period_end=end
    )


# --------------------------------------------------------------------------------- report
def issue_report(
    rc: RunContext,
    platform: TestPlatform,
    stress: StressResult,
    internal: list[InternalTestResult],
    health: TrialRunHealth,
) -> Report:
    """Render, store and publish the trial-run report; the system becomes ``report_ready``."""
    evidence = _evidence(rc, platform, stress, internal, health)
    rendered = render_report(evidence, rc.ledger.digest)
    write_report(rendered, rc.workdir / "report")
    report = rc.ledger.create_report(rc.run.id, rc.system_id, ReportKind.TRIAL_RUN, rendered.markdown + rendered.svg)
    if report.digest != rendered.digest:
        raise TestPlatformError(f"report digest mismatch ({report.digest} != {rendered.digest}); this is a bug")
    report_id, table_id = publish_report(rendered, artifact_key("trial-run", rc.system_id))
    summary = summarize(evidence, report.digest, trial_run_minimum=platform.trial_run)
    record_published(
        rc.ledger, rc.system_id, summary, artifact_id=report_id, table_artifact_id=table_id, actor=rc.actor
    )
    lifecycle.transition(
        rc.ledger, rc.system_id, LifecycleState.REPORT_READY, actor=rc.actor, reason=f"trial-run report {report.digest}"
    )
    rc.log(f"trial-run report issued: {report.digest}")
    return report


def _evidence(
    rc: RunContext,
    platform: TestPlatform,
    stress: StressResult,
    internal: list[InternalTestResult],
    health: TrialRunHealth,
) -> ReportEvidence:
    spec = rc.spec
    parties = PartiesRef(
        department=PartyRef(
            name=spec.parties.department.name or spec.system.department,
            approvers=tuple(a.name for a in spec.parties.department.approvers),
        ),
        cloud_provider=PartyRef(
            name=spec.parties.cloud_provider.name or "云服务商",
            approvers=tuple(a.name for a in spec.parties.cloud_provider.approvers),
        ),
    )
    problems = (
        [f"{health.failures} of {health.checks} health checks failed during the trial run"] if health.failures else []
    )
    return ReportEvidence(
        system=SystemRef(id=spec.system.id, name=spec.system.name, department=spec.system.department),
        parties=parties,
        spec_digest=spec.digest(rc.ledger.digest),
        environment=TestEnvironment(
            base_url=str(platform.base_url),
            users=platform.stress.users,
            spawn_rate=platform.stress.spawn_rate,
            duration_s=int(platform.stress.duration.total_seconds()),
            locust_version=stress.locust_version,
        ),
        stress=stress,
        internal_tests=tuple(internal),
        health=health,
        open_problems=tuple(problems),
        issued_at=rc.ledger.now(),
    )
