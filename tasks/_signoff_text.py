"""The Markdown shown above the sign-off form in the Prefect UI (and by ``cutover sign``, via rich).

Top to bottom: why the previous submission was refused or dropped (a callout, first), what is
signed (system, report link, deadline), the full digests (one code block each, never cut off),
the report's key numbers inline (stress test against each threshold, internal tests, trial run),
the verdicts, who signed, and how to sign (the caller's ``how_to_sign``, else the TOTP steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cutover.ledger import Party, ReportKind
from cutover.spec import Spec
from tasks._report_summary import ReportSummary, StressSummary, TrialRunSummary
from tasks.loadtest import ThresholdVerdict

PARTY_LABELS: Mapping[Party, str] = {
    Party.DEPARTMENT: "owning department 信息系统所属部门",
    Party.CLOUD_PROVIDER: "cloud service provider 云服务商",
}
PASS, FAIL, WARN = "✔", "✘", "⚠"
_LABELS: Mapping[str, str] = {"min_rps": "Throughput 吞吐量 (req/s)"}
_OTHER = frozenset(_LABELS)  # thresholds shown after failure ratio and p95, when the spec sets them
KIND_LABELS: Mapping[ReportKind, str] = {
    ReportKind.TRIAL_RUN: "trial-run report 试运行结果报告",
    ReportKind.DECOMMISSION: "decommission (service exit) report 服务退出报告",
}


@dataclass(frozen=True)
class SignedLine:
    """One signature already given, as shown in the description."""

    party: Party
    approver_id: str
    decision: str
    signed_at: datetime


@dataclass(frozen=True)
class FormContext:
    """Everything the description shows."""

    spec: Spec
    kind: ReportKind
    report_digest: str
    spec_digest: str
    report_link: str
    deadline: datetime
    attempt: int
    signed: Sequence[SignedLine]
    verdicts: Mapping[str, str]
    last_refusal: str | None = None
    summary: ReportSummary | None = None  # the report's key numbers (tasks.report.report_summary)
    how_to_sign: str | None = None  # Markdown shown instead of the TOTP instructions
    notices: Sequence[str] = ()  # further reasons shown at the top, with last_refusal


def signoff_description(context: FormContext) -> str:
    """The Markdown for the form: refusals first, then what is signed, the numbers, who signs, how."""
    parts = [
        _refusal(context.last_refusal, context.notices),
        _header(context),
        _digests(context),
        _key_numbers(context.summary),
        _verdicts(context.verdicts),
        _signatures(context),
        context.how_to_sign or _instructions(context),
    ]
    return "\n\n".join(part.strip("\n") for part in parts if part and part.strip())


def _header(context: FormContext) -> str:
    system = context.spec.system
    # the address as the link text: a terminal (rich) shows the text, not the target
    link = f"[{context.report_link}]({context.report_link})" if context.report_link else "(no link given)"
    return "\n".join(
        [
            f"## Joint sign-off 共同认可 — {KIND_LABELS[context.kind]}",
            "",
            "| | |",
            "|---|---|",
            f"| System 系统 | **{system.name}** (`{system.id}`) |",
            f"| Department 所属部门 | {system.department} |",
            f"| Report 报告 | {link} |",
            f"| Deadline 截止时间 | {_when(context.deadline)} |",
            f"| Attempt 第几次提交 | {context.attempt} |",
        ]
    )


def _digests(context: FormContext) -> str:
    """Each digest whole, in its own code block: the UI wraps or scrolls a block, it never cuts it."""
    return "\n".join(
        [
            "### Digests 摘要 (copy to compare 可复制核对)",
            "",
            "Report digest 报告摘要:",
            "",
            "```text",
            context.report_digest,
            "```",
            "",
            "Spec digest 方案摘要:",
            "",
            "```text",
            context.spec_digest,
            "```",
        ]
    )


def _key_numbers(summary: ReportSummary | None) -> str:
    if summary is None:
        return ""
    overall = (
        f"{PASS} all tests passed 测试全部通过"
        if summary.tests_passed
        else f"{FAIL} not all tests passed 测试未全部通过"
    )
    lines = [f"### Key numbers 关键数据 — {overall}", "", *_stress(summary.stress), "", *_internal(summary)]
    lines += ["", *_trial_run(summary.trial_run)]
    if summary.open_problems:
        lines += ["", "**Open problems 遗留问题**", "", *(f"- {_cell(p)}" for p in summary.open_problems)]
    return "\n".join(lines)


def _stress(stress: StressSummary) -> list[str]:
    status = f"{PASS} passed 通过" if stress.passed else f"{FAIL} failed 未通过"
    head = f"**Stress test 压力测试: {status}**" + (f" — {_cell(stress.reason)}" if stress.reason else "")
    rows = [
        ("Users 并发用户数", str(stress.users), "", ""),
        ("Duration 持续时间", f"{stress.duration_s} s (ran 实际 {stress.elapsed_s:.1f} s)", "", ""),
        ("Requests 请求数", f"{stress.requests} ({stress.failures} failed 失败)", "", ""),
        _threshold_row(stress.verdict("failure_ratio"), "Failure ratio 失败率", stress.failure_ratio),
        _threshold_row(stress.verdict("p95_ms"), "P95 latency 延迟 (ms)", stress.p95_ms),
    ]
    rows += [_threshold_row(v, _LABELS.get(v.name, v.name), v.measured) for v in stress.thresholds if v.name in _OTHER]
    body = [f"| {label} | {measured} | {limit} | {verdict} |" for label, measured, limit, verdict in rows]
    return [head, "", "| measure 指标 | measured 实测 | limit 限值 | verdict 判定 |", "|---|---|---|---|", *body]


def _threshold_row(verdict: ThresholdVerdict | None, label: str, measured: float | None) -> tuple[str, str, str, str]:
    name = verdict.name if verdict else ("failure_ratio" if "ratio" in label else "p95_ms")
    if verdict is None:
        return label, _number(name, measured), "— (no limit in the spec 方案未设限值)", ""
    return (
        label,
        _number(name, verdict.measured),
        f"{verdict.comparison} {_number(name, verdict.limit)}",
        _pass(verdict.passed),
    )


def _internal(summary: ReportSummary) -> list[str]:
    head = "**Internal tests 内部测试**"
    if not summary.internal_tests:
        return [head, "", "None 无."]
    rows = [
        f"| {_cell(t.name)} | {_cell(t.kind)} | {_pass(t.passed)} | {t.duration_s:.2f} s | {_cell(t.detail) or '—'} |"
        for t in summary.internal_tests
    ]
    return [
        head,
        "",
        "| test 测试 | kind 类型 | result 结果 | duration 用时 | detail 说明 |",
        "|---|---|---|---|---|",
        *rows,
    ]


def _trial_run(trial: TrialRunSummary) -> list[str]:
    if trial.minimum is None:
        length = _duration(trial.length)
    else:
        length = f"{_duration(trial.length)} (minimum 最短 {_duration(trial.minimum)}) {_pass(bool(trial.long_enough))}"
    samples = f"{trial.checks} checks 次, {trial.failures} failed 失败 {_pass(trial.failures == 0)}"
    return [
        "**Trial run 试运行**",
        "",
        "| | |",
        "|---|---|",
        f"| Period 时段 | {_when(trial.period_start)} → {_when(trial.period_end)} |",
        f"| Length 时长 | {length} |",
        f"| Health samples 健康检查 | {samples} |",
    ]


def _verdicts(verdicts: Mapping[str, str]) -> str:
    if not verdicts:
        return ""
    rows = [f"| {name} | {verdict} |" for name, verdict in verdicts.items()]
    return "\n".join(["### Verdicts 检查结论", "", "| check 检查项 | verdict 结论 |", "|---|---|", *rows])


def _signatures(context: FormContext) -> str:
    signed = {line.party: line for line in context.signed}
    rows = []
    for party in Party:
        line = signed.get(party)
        if line is None:
            rows.append(f"| {PARTY_LABELS[party]} | *awaited 待签* | |")
        else:
            rows.append(
                f"| {PARTY_LABELS[party]} | {line.decision} by `{line.approver_id}` | {_when(line.signed_at)} |"
            )
    return "\n".join(
        ["### Signatures 签署情况", "", "| party 签署方 | status 状态 | time 时间 |", "|---|---|---|", *rows]
    )


def _refusal(reason: str | None, notices: Sequence[str]) -> str:
    """A callout: why the previous submission was refused or dropped, and any further notices."""
    lines = []
    if reason:
        lines.append(f"**{WARN} The previous submission was refused 上次提交未通过:** {reason}")
    lines += [f"**{WARN}** {notice}" for notice in notices if notice.strip()]
    if not lines:
        return ""
    quoted = "\n\n".join(lines).splitlines()
    return "\n".join(f"> {line}".rstrip() for line in quoted)


def _instructions(context: FormContext) -> str:
    awaited = [party for party in Party if party not in {line.party for line in context.signed}]
    rosters = "; ".join(
        f"{PARTY_LABELS[party]}: "
        + ", ".join(f"`{a.id}` ({a.name})" for a in getattr(context.spec.parties, party.value).approvers)
        for party in awaited
    )
    return "\n".join(
        [
            "### How to sign 如何签署",
            f"1. Read the report and check that its digest is `{context.report_digest}`.",
            f"2. Who may sign now 可签署人: {rosters}. The two parties must be two different people.",
            "3. Fill in your approver id, your decision (approve 同意 / reject 不同意), a comment "
            "(for a rejection: what must change), and the 6-digit code shown now by your "
            "authenticator app (issuer *govcloud-cutover*). Each code works once.",
            "4. Submit with **Resume**. The flow checks the code and the digests; a refused "
            "submission is shown at the top of the next form.",
            f"\nFrom a terminal instead: `cutover sign {context.spec.system.id} --as <your id>`.",
        ]
    )


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(length: timedelta) -> str:
    """``7 d 0 h``, ``2 h 5 min``, ``45 s``: the two largest units that matter."""
    seconds = max(0, int(length.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _number(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    if name == "failure_ratio":
        return f"{value:.2%}"
    return f"{value:.0f}" if name == "p95_ms" else f"{value:.1f}"


def _pass(passed: bool) -> str:
    return f"{PASS} pass 通过" if passed else f"{FAIL} fail 未通过"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")
