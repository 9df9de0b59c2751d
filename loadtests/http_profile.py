"""The generic, spec-driven locustfile.

``tasks/loadtest.py`` starts locust with ``-f loadtests/http_profile.py`` and passes the spec's
stress profile as JSON in the ``CUTOVER_STRESS_PROFILE`` environment variable::

    {"endpoints": [{"name": "参保人查询", "method": "GET", "path": "/api/insured/42", "weight": 8,
                    "body": null, "expect_status": 200, "expect_body_contains": "\\"id\\": 42"}],
     "think_time": [0.0, 0.0]}

Each endpoint becomes a task with the endpoint's weight. A request counts as a success only when
the status equals ``expect_status`` and, if given, the body contains ``expect_body_contains``;
anything else (a wrong status, a missing substring, no answer at all) is marked a failure. The
request is named after the endpoint, so locust's statistics are keyed by the endpoint's name.

This module imports locust only (see DESIGN.md, "Layout"), and the hooks in ``cutover_hooks``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, between, constant

try:
    import loadtests.cutover_hooks  # noqa: F401  (progress flushing, exact final statistics)
except ImportError:  # the project is not installed: locust puts this file's folder on sys.path
    import cutover_hooks  # type: ignore[import-not-found]  # noqa: F401

PROFILE_ENV = "CUTOVER_STRESS_PROFILE"


def _load_profile() -> dict[str, Any]:
    raw = os.environ.get(PROFILE_ENV)
    if not raw:
        raise RuntimeError(
            f"{PROFILE_ENV} is not set: this locustfile is driven by a cutover spec's stress profile. "
            "Run it through tasks.loadtest.run_stress_test, or set the variable to the profile as JSON."
        )
    try:
        profile: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{PROFILE_ENV} is not valid JSON ({exc}); pass the stress profile as JSON") from exc
    if not profile.get("endpoints"):
        raise RuntimeError(f"{PROFILE_ENV} has no endpoints; list at least one under test_platform.stress.endpoints")
    return profile


def _problem(endpoint: dict[str, Any], status: int, text: str | None, error: object) -> str | None:
    """Why a response does not meet the endpoint's expectations, or None when it does."""
    expected = int(endpoint.get("expect_status", 200))
    if status != expected:
        cause = f" ({error!r})" if error else ""
        return f"expected status {expected}, got {status}{cause}"
    needle = endpoint.get("expect_body_contains")
    if needle and needle not in (text or ""):
        return f"response body does not contain the expected text: {needle}"
    return None


def _make_task(endpoint: dict[str, Any]) -> Callable[[FastHttpUser], None]:
    """A locust task that requests one endpoint and checks its answer."""
    method = str(endpoint.get("method", "GET"))
    path = str(endpoint["path"])
    name = str(endpoint["name"])
    body = endpoint.get("body")

    def request(user: FastHttpUser) -> None:
        with user.client.request(method, path, name=name, json=body, catch_response=True) as response:
            problem = _problem(endpoint, response.status_code, response.text, getattr(response, "error", None))
            if problem is None:
                response.success()
            else:
                response.failure(problem)

    request.__name__ = f"request_{name}"
    return request


def _wait_time(think_time: list[float]) -> Callable[[Any], float]:
    low, high = (float(think_time[0]), float(think_time[1])) if think_time else (0.0, 0.0)
    return constant(low) if low == high else between(low, high)


_PROFILE = _load_profile()


class SpecUser(FastHttpUser):
    """A user that requests the profile's endpoints, weighted, with the profile's think time."""

    tasks = {_make_task(endpoint): int(endpoint.get("weight", 1)) for endpoint in _PROFILE["endpoints"]}  # type: ignore[assignment]  # noqa: RUF012
    wait_time = _wait_time(_PROFILE.get("think_time", [0.0, 0.0]))
