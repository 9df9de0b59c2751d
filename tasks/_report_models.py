"""The evidence a trial-run report (试运行结果报告) is rendered from; re-exported by :mod:`tasks.report`."""

from __future__ import annotations

from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tasks.loadtest import StressResult


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SystemRef(_Frozen):
    """The information system the report is about."""

    id: str
    name: str
    department: str


class PartyRef(_Frozen):
    """One signing party: its name and the names of the people who may sign for it."""

    name: str
    approvers: tuple[str, ...] = Field(min_length=1)


class PartiesRef(_Frozen):
    """The two parties whose joint sign-off (共同认可) the report needs."""

    department: PartyRef
    cloud_provider: PartyRef


class TestEnvironment(_Frozen):
    """Where and how the stress test ran."""

    __test__ = False

    base_url: str
    users: int
    spawn_rate: float
    duration_s: int
    locust_version: str

    @classmethod
    def from_stress(cls, result: StressResult) -> TestEnvironment:
        """The environment recorded in a stress result."""
        return cls(
            base_url=result.base_url,
            users=result.users,
            spawn_rate=result.spawn_rate,
            duration_s=result.planned_duration_s,
            locust_version=result.locust_version,
        )


class InternalTestResult(_Frozen):
    """One internal test (内部测试) on the test platform."""

    name: str
    kind: str
    target: str
    passed: bool
    duration_s: float
    detail: str = ""


class TrialRunHealth(_Frozen):
    """Health checks over the trial-run period (试运行)."""

    checks: int = Field(ge=0)
    failures: int = Field(ge=0)
    p50_ms: float | None
    p95_ms: float | None
    period_start: AwareDatetime
    period_end: AwareDatetime

    @property
    def availability(self) -> float | None:
        """Passed checks / all checks; None when nothing was checked."""
        return (self.checks - self.failures) / self.checks if self.checks else None


class ReportEvidence(_Frozen):
    """Everything a trial-run report states. Same evidence, same report, byte for byte."""

    system: SystemRef
    parties: PartiesRef
    spec_digest: str
    environment: TestEnvironment
    stress: StressResult
    internal_tests: tuple[InternalTestResult, ...] = ()
    health: TrialRunHealth
    open_problems: tuple[str, ...] = ()
    issued_at: AwareDatetime = Field(description="When the report is issued; passed in, never read from a clock.")

    @property
    def tests_passed(self) -> bool:
        """The stress test and every internal test passed."""
        return self.stress.passed and all(test.passed for test in self.internal_tests)


class RenderedReport(_Frozen):
    """A rendered report: the Markdown, the latency chart, and the digest of both."""

    markdown: str
    svg: str
    digest: str = Field(description="digest_bytes(markdown + svg, algorithm), e.g. 'sm3:<hex>'.")
    stress_table: tuple[dict[str, str], ...] = Field(description="Per-endpoint stress rows, for a table artifact.")
    locust_html: Path | None = Field(description="Locust's HTML report, copied beside the report by write_report.")


class ReportPaths(_Frozen):
    """Where :func:`tasks.report.write_report` put the files."""

    markdown: Path
    svg: Path
    digest: Path
    locust_html: Path | None
