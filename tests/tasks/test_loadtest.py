"""Stress tests with real locust subprocesses against the tiny HTTP app on loopback.

Each run is a few seconds with a few users, so the module stays well under a minute.
Run alone with ``pytest -p tests.fixtures.httpapp tests/tasks/test_loadtest.py``.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from cutover.errors import StressTestFailed
from cutover.spec import StressProfile, Thresholds
from tasks._locust_stats import read_history
from tasks._stress_result import verdicts
from tasks.loadtest import Progress, StressResult, run_stress_test, stress_test
from tests.fixtures.httpapp import HttpApp

ITEM, CREATE, HEALTH = "查询 item", "登记 create", "健康检查 healthz"


def make_profile(**overrides: Any) -> StressProfile:
    """A short profile over the app's three endpoints; ``overrides`` replace top-level keys."""
    data: dict[str, Any] = {
        "users": 5,
        "spawn_rate": 5,
        "duration": "3s",
        "endpoints": [
            {"name": ITEM, "path": "/api/items/42", "weight": 3, "expect_body_contains": '"id":42'},
            {"name": CREATE, "method": "POST", "path": "/api/items", "body": {"amount": 100}, "expect_status": 201},
            {"name": HEALTH, "path": "/healthz"},
        ],
        "thresholds": {"p95_ms": 500, "failure_ratio": 0.01, "min_rps": 5},
    }
    data.update(overrides)
    return StressProfile.model_validate(data)


def verdict(result: StressResult, name: str) -> bool:
    return next(v.passed for v in result.thresholds if v.name == name)


def test_a_healthy_target_passes_every_threshold_and_the_numbers_match_what_it_served(
    httpapp: HttpApp, tmp_path: Path
) -> None:
    progress: list[Progress] = []
    # 8 s: on a busy machine locust spends seconds starting; the run must still see every user at work
    result = run_stress_test(make_profile(duration="8s"), httpapp.base_url, tmp_path, on_progress=progress.append)

    assert result.passed and result.completed and result.reason is None, result.reason
    assert all(v.passed for v in result.thresholds)
    assert {e.name for e in result.endpoints} == {ITEM, CREATE, HEALTH}
    assert sum(e.requests for e in result.endpoints) == result.requests == httpapp.requests
    assert result.failure_ratio == 0 and result.rps > 5
    assert result.p50_ms is not None and result.p95_ms is not None and result.p99_ms is not None
    assert result.html_report is not None and result.html_report.is_file()
    # locust samples its history every few seconds: on a busy machine a short run may hold one sample
    assert result.history and all(0 <= p.requests <= result.requests for p in result.history)
    assert len(progress) >= 2 and progress[0].pid > 0 and progress[-1].users == 5 and progress[-1].requests > 0
    result.raise_for_verdict()


def test_each_threshold_says_what_it_expected_and_what_was_measured_even_when_nothing_was() -> None:
    limits = Thresholds(p95_ms=800, failure_ratio=0.01, min_rps=50)

    assert [v.describe() for v in verdicts(limits, None)] == [
        "p95_ms: expected <= 800, measured nothing (no request was recorded) (missed)",
        "failure_ratio: expected <= 0.01, measured nothing (no request was recorded) (missed)",
        "min_rps: expected >= 50, measured nothing (no request was recorded) (missed)",
    ]


def test_a_slow_target_fails_on_p95_and_the_error_names_the_threshold(httpapp: HttpApp, tmp_path: Path) -> None:
    httpapp.configure(latency_s=0.15)
    profile = make_profile(thresholds={"p95_ms": 100, "failure_ratio": 0.01, "min_rps": 1})

    result = run_stress_test(profile, httpapp.base_url, tmp_path)

    assert result.completed and not result.passed
    assert not verdict(result, "p95_ms") and verdict(result, "failure_ratio") and verdict(result, "min_rps")
    assert result.p95_ms is not None and result.p95_ms >= 150
    with pytest.raises(StressTestFailed, match=r"p95_ms: expected <= 100, measured \d+ \(missed\)") as caught:
        result.raise_for_verdict()
    assert "test_platform.stress.thresholds" in str(caught.value)


def test_wrong_statuses_and_wrong_bodies_both_count_as_failures(httpapp: HttpApp, tmp_path: Path) -> None:
    httpapp.configure(error_rate=0.2, wrong_body_rate=0.2)

    result = run_stress_test(
        make_profile(duration="8s"), httpapp.base_url, tmp_path
    )  # every endpoint errs at least once

    assert result.completed and not result.passed
    assert not verdict(result, "failure_ratio") and result.failure_ratio > 0.15
    errors = " ".join(e.error for e in result.errors)
    assert "expected status 200, got 500" in errors
    assert "expected status 201, got 500" in errors
    assert 'does not contain the expected text: "id":42' in errors
    item = next(e for e in result.endpoints if e.name == ITEM)
    assert item.failure_ratio > next(e for e in result.endpoints if e.name == HEALTH).failure_ratio
    with pytest.raises(StressTestFailed, match="failure_ratio"):
        result.raise_for_verdict()


def test_locust_killed_mid_run_gives_a_failed_result_with_the_reason(httpapp: HttpApp, tmp_path: Path) -> None:
    started = threading.Event()
    pids: list[int] = []

    def on_progress(progress: Progress) -> None:
        pids.append(progress.pid)
        started.set()

    def killer() -> None:
        if started.wait(timeout=30):
            os.killpg(pids[0], signal.SIGKILL)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        result = run_stress_test(make_profile(duration="6s"), httpapp.base_url, tmp_path, on_progress=on_progress)
    finally:
        thread.join(timeout=30)

    assert not result.passed and not result.completed
    assert result.reason is not None and "killed by SIGKILL" in result.reason
    assert result.elapsed_s < 6
    with pytest.raises(StressTestFailed, match=r"did not complete: locust was killed by SIGKILL.*stress\.log"):
        result.raise_for_verdict()


def test_a_target_that_refuses_connections_fails_with_the_reason(closed_port_url: str, tmp_path: Path) -> None:
    profile = make_profile(think_time=(0.05, 0.05), thresholds={"p95_ms": 500, "failure_ratio": 1, "min_rps": 0})

    result = run_stress_test(profile, closed_port_url, tmp_path)

    assert not result.passed and not result.completed
    assert result.reason is not None
    assert f"the target {closed_port_url} did not answer correctly: all" in result.reason
    assert "refused" in result.reason.lower()


def test_a_run_that_overruns_its_deadline_is_killed_and_fails(httpapp: HttpApp, tmp_path: Path) -> None:
    result = run_stress_test(make_profile(duration="10s"), httpapp.base_url, tmp_path, deadline_s=2)

    assert not result.passed and not result.completed
    assert result.reason is not None and "overran its deadline of 2 s" in result.reason
    assert result.exit_code is None and result.elapsed_s < 5


def test_a_locustfile_that_crashes_fails_with_its_exit_code_and_last_words(httpapp: HttpApp, tmp_path: Path) -> None:
    broken = tmp_path / "broken_locustfile.py"
    broken.write_text('raise RuntimeError("broken on purpose")\n', encoding="utf-8")

    result = run_stress_test(make_profile(locustfile=broken), httpapp.base_url, tmp_path / "run")

    assert not result.passed and not result.completed and result.overall is None
    assert result.reason is not None and "locust exited with code" in result.reason
    assert "broken on purpose" in result.reason


def test_the_prefect_task_logs_progress_and_returns_the_result(
    httpapp: HttpApp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasks.loadtest")

    result = stress_test.fn(make_profile(), httpapp.base_url, tmp_path)

    assert result.passed
    messages = [r.getMessage() for r in caplog.records]
    assert any(re.match(r"stress test \d+s: \d+ users, [\d.]+ req/s", m) for m in messages)
    assert any(m.startswith("stress test passed:") for m in messages)
    assert stress_test.retries == 0 and stress_test.timeout_seconds


def test_a_half_written_last_line_of_the_history_is_ignored(tmp_path: Path) -> None:
    history = tmp_path / "stress_stats_history.csv"
    header = (
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%,Total Request Count,Total Failure Count\n"
    )
    history.write_text(header + "100,5,,Aggregated,10.0,0.0,12,30,40,50,0\n101,5,,Aggreg", encoding="utf-8")

    points = read_history(history)

    assert len(points) == 1 and points[0].p95_ms == 30 and points[0].requests == 50
