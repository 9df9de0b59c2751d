"""Stress test (压力测试) on the test platform: locust driven by the spec's stress profile.

:func:`run_stress_test` runs locust headless as a bounded subprocess against the system on the
test platform, reports progress while it runs, and returns a :class:`StressResult` with the
measured numbers and a verdict per threshold. It never raises for a failed test: a locust that
crashed, was killed or overran its deadline, or a target that did not answer, gives a *failed*
result with the reason. The flow decides what happens next, usually with
:meth:`StressResult.raise_for_verdict`, which raises :class:`~cutover.errors.StressTestFailed`.

:func:`stress_test` is the Prefect task around it; it logs progress to the run log.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from cutover.spec import StressProfile
from tasks._locust_run import RunOutcome, child_environment, locust_command, run_locust
from tasks._locust_stats import (
    EndpointMetrics,
    FailureRecord,
    HistoryPoint,
    read_failures,
    read_history,
    read_stats,
)
from tasks._stress_result import Progress, StressResult, ThresholdVerdict, verdicts

__all__ = [
    "EndpointMetrics",
    "FailureRecord",
    "HistoryPoint",
    "Progress",
    "StressResult",
    "ThresholdVerdict",
    "run_stress_test",
    "stress_test",
]

PROFILE_ENV = "CUTOVER_STRESS_PROFILE"
GENERIC_LOCUSTFILE = Path(__file__).resolve().parents[1] / "loadtests" / "http_profile.py"
DEFAULT_GRACE_S = 30.0
"""Time allowed beyond the run time for locust to start, stop its users and write its reports."""
POLL_S = 2.0
TASK_TIMEOUT_S = 4 * 3600
"""The Prefect task's own limit; the run's hard deadline (duration + grace) normally ends it first."""


def _process_problem(outcome: RunOutcome, run_time_s: int, deadline_s: float) -> str | None:
    """Why the locust process itself did not run to the end, or None."""
    if outcome.overran:
        return (
            f"locust overran its deadline of {deadline_s:g} s (a {run_time_s} s run plus time to start and stop) "
            f"and its process group was killed"
        )
    if outcome.signal_name:
        return f"locust was killed by {outcome.signal_name} after {outcome.elapsed_s:.1f} s of a planned {run_time_s} s run"
    if outcome.returncode != 0:
        return f"locust exited with code {outcome.returncode}; its last lines: {outcome.log_tail() or '(none)'}"
    if outcome.elapsed_s < run_time_s:
        return f"locust ended after {outcome.elapsed_s:.1f} s of a planned {run_time_s} s run"
    return None


def _output_problem(result_html: Path | None, overall: EndpointMetrics | None, stats_csv: Path) -> str | None:
    if overall is None:
        return f"locust wrote no complete statistics ({stats_csv} is missing or has no Aggregated row)"
    if result_html is None:
        return "locust stopped before its run time ended (it wrote no HTML report); it was probably terminated"
    return None


def _target_problem(base_url: str, overall: EndpointMetrics, errors: tuple[FailureRecord, ...]) -> str | None:
    if overall.requests == 0:
        return f"locust sent no requests to {base_url}"
    if overall.failures == overall.requests:
        first = f"; most frequent error: {errors[0].error}" if errors else ""
        return f"the target {base_url} did not answer correctly: all {overall.requests} requests failed{first}"
    return None


def _threshold_problem(judged: tuple[ThresholdVerdict, ...]) -> str | None:
    missed = [v.describe() for v in judged if not v.passed]
    return f"missed thresholds: {'; '.join(missed)}" if missed else None


# ---------------------------------------------------------------------------------- run
def _progress(pid: int, elapsed_s: float, history_csv: Path) -> Progress:
    history = read_history(history_csv)
    if not history:
        return Progress(pid=pid, elapsed_s=elapsed_s, users=0, rps=0.0, requests=0, failures=0, p95_ms=None)
    last = history[-1]
    return Progress(
        pid=pid,
        elapsed_s=elapsed_s,
        users=last.users,
        rps=last.rps,
        requests=last.requests,
        failures=last.failures,
        p95_ms=last.p95_ms,
    )


def _profile_json(profile: StressProfile) -> str:
    data = profile.model_dump(mode="json", by_alias=True, include={"endpoints", "think_time"})
    return json.dumps(data, ensure_ascii=False)


def _locustfile(profile: StressProfile) -> Path:
    if profile.locustfile is None:
        return GENERIC_LOCUSTFILE
    return (
        profile.locustfile if profile.locustfile.is_absolute() else GENERIC_LOCUSTFILE.parents[1] / profile.locustfile
    )


def _clear_previous_outputs(prefix: Path) -> None:
    """Remove a previous run's files so a stale report can never pass for this run's."""
    suffixes = ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv", ".html", ".log")
    for suffix in (*suffixes, "_final_stats.csv", "_final_failures.csv"):
        Path(f"{prefix}{suffix}").unlink(missing_ok=True)


def _prefer_final(prefix: Path, name: str) -> Path:
    """``<prefix>_final_<name>.csv`` (exact, written at quit by cutover_hooks) if present, else locust's own."""
    final = Path(f"{prefix}_final_{name}.csv")
    return final if final.is_file() else Path(f"{prefix}_{name}.csv")


def _read_stats(stats_csv: Path) -> tuple[EndpointMetrics | None, tuple[EndpointMetrics, ...]]:
    try:
        return read_stats(stats_csv)
    except (OSError, ValueError, KeyError):
        return None, ()


def run_stress_test(
    profile: StressProfile,
    base_url: str,
    workdir: Path,
    *,
    deadline_s: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> StressResult:
    """Run the stress profile against ``base_url`` with locust and judge it against the thresholds.

    Locust's files go to ``workdir`` (``stress_stats.csv``, ``stress_stats_history.csv``,
    ``stress_failures.csv``, ``stress.html``, ``stress.log``). ``deadline_s`` bounds the whole run
    (default: the profile's duration plus 30 s); past it locust's process group is killed.
    ``on_progress`` is called about every two seconds while locust runs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = workdir / "stress"
    _clear_previous_outputs(prefix)
    run_time_s = max(1, math.ceil(profile.duration.total_seconds()))
    deadline = deadline_s if deadline_s is not None else run_time_s + DEFAULT_GRACE_S
    history_csv = Path(f"{prefix}_stats_history.csv")

    def on_poll(pid: int, elapsed_s: float) -> None:
        if on_progress is not None:
            on_progress(_progress(pid, elapsed_s, history_csv))

    command = locust_command(_locustfile(profile), base_url, profile.users, profile.spawn_rate, run_time_s, prefix)
    outcome = run_locust(
        command,
        env=child_environment({PROFILE_ENV: _profile_json(profile)}),
        cwd=workdir,
        log_path=Path(f"{prefix}.log"),
        deadline_s=deadline,
        poll_s=POLL_S,
        on_poll=on_poll,
    )
    return _result(profile, base_url, prefix, outcome, run_time_s, deadline)


def _result(
    profile: StressProfile, base_url: str, prefix: Path, outcome: RunOutcome, run_time_s: int, deadline_s: float
) -> StressResult:
    stats_csv, failures_csv = _prefer_final(prefix, "stats"), _prefer_final(prefix, "failures")
    overall, endpoints = _read_stats(stats_csv)
    history, errors = read_history(Path(f"{prefix}_stats_history.csv")), read_failures(failures_csv)
    html = Path(f"{prefix}.html")
    html_report = html if html.is_file() else None
    judged = verdicts(profile.thresholds, overall)
    run_problem = (
        _process_problem(outcome, run_time_s, deadline_s)
        or _output_problem(html_report, overall, stats_csv)
        or (_target_problem(base_url, overall, errors) if overall else None)
    )
    reason = run_problem or _threshold_problem(judged)
    return StressResult(
        base_url=base_url,
        users=profile.users,
        spawn_rate=profile.spawn_rate,
        planned_duration_s=run_time_s,
        elapsed_s=round(outcome.elapsed_s, 3),
        locust_version=version("locust"),
        exit_code=None if outcome.overran else outcome.returncode,
        overall=overall,
        endpoints=endpoints,
        thresholds=judged,
        errors=errors,
        history=history,
        completed=run_problem is None,
        passed=reason is None,
        reason=reason,
        html_report=html_report,
        stats_csv=stats_csv,
        history_csv=Path(f"{prefix}_stats_history.csv"),
        failures_csv=failures_csv,
        log_path=outcome.log_path,
    )


# -------------------------------------------------------------------------- prefect task
def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a flow or task run (e.g. stress_test.fn)
        return logging.getLogger(__name__)


def _format_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g} ms"


@task(name="stress-test", retries=0, timeout_seconds=TASK_TIMEOUT_S, cache_policy=NO_CACHE)
def stress_test(profile: StressProfile, base_url: str, workdir: Path) -> StressResult:
    """Prefect task: run the stress test and log its progress; the flow judges the result.

    Never retried (a second load run is a new test, not a retry) and never cached.
    """
    logger = _logger()
    logger.info(
        "stress test: %d users (spawn %g/s) for %s against %s; thresholds %s",
        profile.users,
        profile.spawn_rate,
        profile.duration,
        base_url,
        profile.thresholds.model_dump(),
    )

    def log_progress(p: Progress) -> None:
        logger.info(
            "stress test %.0fs: %d users, %.1f req/s, %d requests, %d failures, p95 %s",
            p.elapsed_s,
            p.users,
            p.rps,
            p.requests,
            p.failures,
            _format_ms(p.p95_ms),
        )

    result = run_stress_test(profile, base_url, workdir, on_progress=log_progress)
    log = logger.info if result.passed else logger.warning
    log(
        "stress test %s: %d requests, %.1f req/s, failure ratio %.4f, p95 %s%s",
        "passed" if result.passed else "FAILED",
        result.requests,
        result.rps,
        result.failure_ratio,
        _format_ms(result.p95_ms),
        f"; {result.reason}" if result.reason else "",
    )
    return result
