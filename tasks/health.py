"""HTTP health checks: one probe, a gate of consecutive passes, and an async sweep of many.

A probe never raises for an unhealthy target: it returns a :class:`Probe` saying what was seen
(status, latency, the error), so callers can record it. The health gate raises
:class:`~cutover.errors.HealthCheckFailed` when the required consecutive passes do not come in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from cutover.errors import HealthCheckFailed
from cutover.secrets import redact
from cutover.spec import HealthGate, HttpCheckStep

_EXCERPT_CHARS = 120  # of a failed check's body, in its message


@dataclass(frozen=True)
class Probe:
    """What one HTTP check saw."""

    check: str
    url: str
    passed: bool
    status: int | None
    latency_ms: float
    error: str | None = None

    def describe(self) -> str:
        seen = f"HTTP {self.status}" if self.status is not None else "no answer"
        line = f"{self.check} {self.url}: {'passed' if self.passed else 'failed'} ({seen}, {self.latency_ms:.0f} ms)"
        return f"{line}: {self.error}" if self.error else line


def _judge(check: HttpCheckStep, response: httpx.Response, started: float) -> Probe:
    latency = (time.perf_counter() - started) * 1000
    passed = response.status_code == check.expect_status
    error = None
    if passed and check.expect_body_contains is not None and check.expect_body_contains not in response.text:
        passed, error = False, f"expected the body to contain {check.expect_body_contains!r}; {_excerpt(response.text)}"
    elif not passed:
        error = f"expected HTTP {check.expect_status}; {_excerpt(response.text)}"
    return Probe(check.id, str(check.url), passed, response.status_code, latency, error)


def _excerpt(body: str) -> str:
    """A short, secret-redacted excerpt of what came back, for a failed check's message."""
    text = " ".join(redact(body).split())
    if not text:
        return "the body was empty"
    cut = text if len(text) <= _EXCERPT_CHARS else f"{text[:_EXCERPT_CHARS]}…"
    return f"got {cut!r}"


def _failed(check: HttpCheckStep, exc: httpx.HTTPError, started: float) -> Probe:
    latency = (time.perf_counter() - started) * 1000
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    within = f" within {check.timeout.total_seconds():g} s" if isinstance(exc, httpx.TimeoutException) else ""
    expected = f"expected HTTP {check.expect_status}{within}; got no answer ({redact(reason)})"
    return Probe(check.id, str(check.url), False, None, latency, expected)


def probe(check: HttpCheckStep, client: httpx.Client | None = None) -> Probe:
    """Run one check (synchronously)."""
    started = time.perf_counter()
    own = client is None
    client = client or httpx.Client(trust_env=False)
    try:
        response = client.request(check.method, str(check.url), timeout=check.timeout.total_seconds())
        return _judge(check, response, started)
    except httpx.HTTPError as exc:
        return _failed(check, exc, started)
    finally:
        if own:
            client.close()


async def aprobe(check: HttpCheckStep, client: httpx.AsyncClient) -> Probe:
    """Run one check (asynchronously, on a shared client)."""
    started = time.perf_counter()
    try:
        response = await client.request(check.method, str(check.url), timeout=check.timeout.total_seconds())
        return _judge(check, response, started)
    except httpx.HTTPError as exc:
        return _failed(check, exc, started)


async def sweep(checks: Sequence[HttpCheckStep], *, concurrency: int = 200) -> list[Probe]:
    """Run many checks concurrently (bounded), one shared connection pool; results in input order."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one(check: HttpCheckStep) -> Probe:
            async with semaphore:
                return await aprobe(check, client)

        return list(await asyncio.gather(*(one(c) for c in checks)))


def _gate_missed(gate: HealthGate, streak: int, last: list[Probe]) -> str:
    """What the gate expected (N passes in a row within its time) and what it got."""
    failing = "; ".join(p.describe() for p in last if not p.passed)
    got = f"the last round failed: {failing}" if failing else f"only {streak} in a row by then (the last round passed)"
    return f"health gate: expected {gate.passes} consecutive passes within {gate.within.total_seconds():g} s; got {got}"


def health_gate(
    checks: Sequence[HttpCheckStep],
    gate: HealthGate,
    *,
    on_probe: Callable[[int, list[Probe]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Probe]:
    """Probe all ``checks`` every ``gate.interval`` until ``gate.passes`` rounds in a row pass.

    Raises HealthCheckFailed, naming the last failures, when that does not happen within ``gate.within``.
    """
    deadline = time.monotonic() + gate.within.total_seconds()
    streak, last = 0, []
    with httpx.Client(trust_env=False) as client:
        while True:
            last = [probe(c, client) for c in checks]
            streak = streak + 1 if all(p.passed for p in last) else 0
            if on_probe is not None:
                on_probe(streak, last)
            if streak >= gate.passes:
                return last
            if time.monotonic() + gate.interval.total_seconds() > deadline:
                raise HealthCheckFailed(_gate_missed(gate, streak, last))
            sleep(gate.interval.total_seconds())
