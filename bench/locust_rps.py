"""Requests per second locust reaches against the tiny test app on loopback.

Usage: ``.venv/bin/python bench/locust_rps.py [USERS] [SECONDS]`` (default 20 users, 5 s).
Locust and the app share this machine's cores, so the number is a floor for the tooling, not a
property of any system under test.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test app lives in tests/fixtures

from cutover.spec import StressProfile
from tasks.loadtest import run_stress_test
from tests.fixtures.httpapp import serve


def main(users: int = 20, seconds: int = 5) -> None:
    """Run one stress test against a fresh app and print the overall numbers."""
    profile = StressProfile.model_validate(
        {
            "users": users,
            "spawn_rate": users,
            "duration": f"{seconds}s",
            "endpoints": [
                {"name": "item", "path": "/api/items/42", "weight": 8, "expect_body_contains": '"id":42'},
                {"name": "create", "method": "POST", "path": "/api/items", "body": {"a": 1}, "expect_status": 201},
                {"name": "healthz", "path": "/healthz"},
            ],
            "thresholds": {"p95_ms": 1000, "failure_ratio": 0.01, "min_rps": 1},
        }
    )
    with serve() as app, tempfile.TemporaryDirectory() as workdir:
        result = run_stress_test(profile, app.base_url, Path(workdir))
    print(
        f"cores={os.cpu_count()} users={users} duration={seconds}s requests={result.requests} "
        f"rps={result.rps:.0f} p50={result.p50_ms}ms p95={result.p95_ms}ms p99={result.p99_ms}ms "
        f"passed={result.passed} reason={result.reason}"
    )


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
