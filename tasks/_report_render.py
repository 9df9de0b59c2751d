"""The Markdown sections of a trial-run report. Pure functions of the evidence: no clock, no files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cutover.digest import Algorithm, digest_json
from tasks._locust_stats import EndpointMetrics
from tasks._report_models import ReportEvidence, TrialRunHealth
from tasks.loadtest import StressResult, ThresholdVerdict

CHART_FILE = "latency.svg"
LOCUST_HTML_FILE = "locust-report.html"
PASS, FAIL, WARN = "✔", "✘", "⚠"

_THRESHOLD_LABELS = {
    "p95_ms": "P95 延迟 latency (ms)",
    "failure_ratio": "失败率 Failure ratio",
    "min_rps": "吞吐量 Throughput (req/s)",
}


def cell(value: object) -> str:
    """A table cell: pipes escaped, line breaks flattened."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def ms(value: float | None) -> str:
    """Milliseconds, whole."""
    return "—" if value is None else f"{value:.0f}"


def _ms1(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def ratio(value: float | None) -> str:
    """A ratio as a percentage with two decimals."""
    return "—" if value is None else f"{value:.2%}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def endpoint_row(metrics: EndpointMetrics) -> dict[str, str]:
    """One endpoint's numbers, formatted; the same strings go into the table artifact."""
    return {
        "endpoint": metrics.name if not metrics.method else f"{metrics.method} {metrics.name}",
        "requests": str(metrics.requests),
        "failures": str(metrics.failures),
        "failure_ratio": ratio(metrics.failure_ratio),
        "p50_ms": ms(metrics.p50_ms),
        "p95_ms": ms(metrics.p95_ms),
        "p99_ms": ms(metrics.p99_ms),
        "rps": f"{metrics.rps:.1f}",
    }


_ENDPOINT_HEADERS = (
    "接口 Endpoint",
    "请求数 Requests",
    "失败数 Failures",
    "失败率 Failure ratio",
    "P50 (ms)",
    "P95 (ms)",
    "P99 (ms)",
    "吞吐量 Req/s",
)


def _header(evidence: ReportEvidence, algorithm: Algorithm) -> list[str]:
    system, env = evidence.system, evidence.environment
    evidence_digest = digest_json(evidence.model_dump(mode="json"), algorithm)
    return [
        f"# 试运行结果报告 Trial-run report — {system.name}",
        "",
        *table(
            ("项目 Item", "内容 Value"),
            [
                ("系统 System", f"{system.name} ({system.id})"),
                ("所属部门 Owning department", system.department),
                ("云服务商 Cloud service provider", evidence.parties.cloud_provider.name),
                ("出具时间 Issued at", evidence.issued_at.isoformat(timespec="seconds")),
                ("规格摘要 Spec digest", f"`{evidence.spec_digest}`"),
                ("证据摘要 Evidence digest", f"`{evidence_digest}`"),
                ("测试地址 Test platform URL", env.base_url),
            ],
        ),
    ]


def _conclusion(evidence: ReportEvidence) -> list[str]:
    internal_ok = all(t.passed for t in evidence.internal_tests)
    lines = ["", "## 结论 Conclusion", ""]
    lines.append(f"- {PASS if evidence.stress.passed else FAIL} 压力测试 Stress test")
    lines.append(f"- {PASS if internal_ok else FAIL} 内部测试 Internal tests ({len(evidence.internal_tests)})")
    health = evidence.health
    lines.append(
        f"- {PASS if health.failures == 0 else FAIL} 试运行健康检查 Trial-run health ({health.failures} failed)"
    )
    if evidence.tests_passed:
        lines.append(
            "\n测试全部通过，提请双方共同认可。 All tests passed; the report is put to both parties for sign-off."
        )
    else:
        lines.append("\n测试未全部通过，不得割接。 Not all tests passed; no cutover until they do.")
    return lines


def _environment(evidence: ReportEvidence) -> list[str]:
    env = evidence.environment
    return [
        "",
        "## 测试环境 Test environment",
        "",
        *table(
            ("项目 Item", "内容 Value"),
            [
                ("测试平台地址 Base URL", env.base_url),
                ("并发用户数 Users", env.users),
                ("加压速率 Spawn rate (users/s)", f"{env.spawn_rate:g}"),
                ("持续时间 Duration (s)", env.duration_s),
                ("Locust 版本 version", env.locust_version),
            ],
        ),
    ]


def _verdict_row(verdict: ThresholdVerdict) -> tuple[str, str, str, str]:
    as_ratio = verdict.name == "failure_ratio"
    fmt = ratio if as_ratio else (lambda v: "—" if v is None else f"{v:.1f}")
    label = _THRESHOLD_LABELS.get(verdict.name, verdict.name)
    return (
        label,
        f"{verdict.comparison} {fmt(verdict.limit)}",
        fmt(verdict.measured),
        PASS if verdict.passed else FAIL,
    )


def _stress_summary(result: StressResult) -> list[str]:
    status = f"{PASS} 通过 Passed" if result.passed else f"{FAIL} 未通过 Failed"
    lines = ["", "## 压力测试 Stress test", "", f"**{status}**" + (f" — {result.reason}" if result.reason else "")]
    overall = [endpoint_row(result.overall)] if result.overall else []
    lines += ["", "### 总体 Overall", "", *table(_ENDPOINT_HEADERS, [list(r.values()) for r in overall])]
    rows = [list(endpoint_row(m).values()) for m in result.endpoints]
    lines += ["", "### 各接口 Per endpoint", "", *table(_ENDPOINT_HEADERS, rows)]
    verdicts = [_verdict_row(v) for v in result.thresholds]
    lines += ["", "### 阈值判定 Threshold verdicts", ""]
    lines += table(("指标 Metric", "限值 Limit", "实测 Measured", "判定 Verdict"), verdicts)
    return lines


def _stress_details(result: StressResult) -> list[str]:
    lines: list[str] = []
    if result.errors:
        rows = [(e.method, e.name, e.error, e.occurrences) for e in result.errors[:10]]
        lines += ["", "### 错误 Errors", "", *table(("方法 Method", "接口 Endpoint", "错误 Error", "次数 Count"), rows)]
    lines += ["", "### 延迟曲线 Latency over time", "", f"![延迟曲线 Latency over time]({CHART_FILE})", ""]
    if result.html_report is not None:
        lines.append(f"Locust 详细报告 Full locust report: [{LOCUST_HTML_FILE}]({LOCUST_HTML_FILE})")
    else:
        lines.append("Locust 未生成 HTML 报告 Locust wrote no HTML report.")
    return lines


def _internal_tests(evidence: ReportEvidence) -> list[str]:
    lines = ["", "## 内部测试 Internal tests", ""]
    if not evidence.internal_tests:
        return [*lines, "无 None."]
    rows = [
        (t.name, t.kind, t.target, PASS if t.passed else FAIL, f"{t.duration_s:.2f}", t.detail or "—")
        for t in evidence.internal_tests
    ]
    headers = ("名称 Name", "类型 Kind", "目标 Target", "结果 Result", "用时 Duration (s)", "说明 Detail")
    return lines + table(headers, rows)


def _health(health: TrialRunHealth) -> list[str]:
    period = f"{health.period_start.isoformat(timespec='seconds')} — {health.period_end.isoformat(timespec='seconds')}"
    row = (period, health.checks, health.failures, ratio(health.availability), _ms1(health.p50_ms), _ms1(health.p95_ms))
    headers = ("时段 Period", "检查 Checks", "失败 Failures", "可用率 Availability", "P50 (ms)", "P95 (ms)")
    return ["", "## 试运行 Trial run", "", *table(headers, [row])]


def _open_problems(problems: Sequence[str]) -> list[str]:
    lines = ["", "## 遗留问题 Open problems", ""]
    return lines + ([f"- {cell(p)}" for p in problems] if problems else ["无 None."])


def _signoff(evidence: ReportEvidence) -> list[str]:
    parties = evidence.parties
    rows = [
        ("信息系统所属部门 Owning department", parties.department.name, "、".join(parties.department.approvers)),
        ("云服务商 Cloud service provider", parties.cloud_provider.name, "、".join(parties.cloud_provider.approvers)),
    ]
    return [
        "",
        "## 共同认可 Joint sign-off",
        "",
        *table(("角色 Role", "单位 Party", "审批人 Approvers"), rows),
        "",
        "双方签署时确认本报告及延迟曲线的摘要。 Each party's signature binds the digest of this report and its chart.",
    ]


def markdown(evidence: ReportEvidence, algorithm: Algorithm) -> str:
    """The whole report as Markdown, ending with a newline."""
    sections = [
        _header(evidence, algorithm),
        _conclusion(evidence),
        _environment(evidence),
        _stress_summary(evidence.stress),
        _stress_details(evidence.stress),
        _internal_tests(evidence),
        _health(evidence.health),
        _open_problems(evidence.open_problems),
        _signoff(evidence),
    ]
    return "\n".join(line for section in sections for line in section) + "\n"
