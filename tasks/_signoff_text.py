"""The Markdown shown above the sign-off form in the Prefect UI (and by ``cutover sign``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cutover.ledger import Party, ReportKind
from cutover.spec import Spec

PARTY_LABELS: Mapping[Party, str] = {
    Party.DEPARTMENT: "owning department 信息系统所属部门",
    Party.CLOUD_PROVIDER: "cloud service provider 云服务商",
}
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


def signoff_description(context: FormContext) -> str:
    """The Markdown for the form: what is signed, what was verified, who signs, how."""
    parts = [
        _header(context),
        _verdicts(context.verdicts),
        _signatures(context),
        _refusal(context.last_refusal),
        _instructions(context),
    ]
    return "\n\n".join(part for part in parts if part)


def _header(context: FormContext) -> str:
    system = context.spec.system
    link = f"[open the report]({context.report_link})" if context.report_link else "(no link given)"
    return "\n".join(
        [
            f"## Joint sign-off 共同认可 — {KIND_LABELS[context.kind]}",
            "",
            "| | |",
            "|---|---|",
            f"| System 系统 | **{system.name}** (`{system.id}`) |",
            f"| Department 所属部门 | {system.department} |",
            f"| Report digest 报告摘要 | `{context.report_digest}` |",
            f"| Spec digest 方案摘要 | `{context.spec_digest}` |",
            f"| Report 报告 | {link} |",
            f"| Deadline 截止时间 | {_when(context.deadline)} |",
            f"| Attempt 第几次提交 | {context.attempt} |",
        ]
    )


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


def _refusal(reason: str | None) -> str:
    if not reason:
        return ""
    return f"> **The previous submission was refused 上次提交未通过:** {reason}"


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
