"""The sign-off form's Markdown: refusals first, the key numbers inline, the digests whole."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.markdown import Markdown

from cutover.ledger import Party, ReportKind
from cutover.spec import Spec
from tasks._signoff_text import FormContext, SignedLine, signoff_description
from tasks.report import ReportSummary, render_report, summarize
from tests.specbuilder import base_spec
from tests.tasks.test_report import evidence

REPORT_DIGEST = "sm3:" + "0123456789abcdef" * 4
SPEC_DIGEST = "sm3:" + "fedcba9876543210" * 4


@pytest.fixture
def spec() -> Spec:
    return Spec.model_validate(base_spec())


def summary_of(tmp_path: Path, *, minimum: timedelta | None = timedelta(days=7), **stress: Any) -> ReportSummary:
    facts = evidence(tmp_path, **stress)
    return summarize(facts, render_report(facts).digest, trial_run_minimum=minimum)


def form(spec: Spec, **fields: Any) -> str:
    values: dict[str, Any] = {
        "spec": spec,
        "kind": ReportKind.TRIAL_RUN,
        "report_digest": REPORT_DIGEST,
        "spec_digest": SPEC_DIGEST,
        "report_link": "http://127.0.0.1:4200/v2/artifacts/artifact/5ab9f64f-faef-4032-89f1-0ea85a133e47",
        "deadline": datetime(2027, 3, 15, 9, 0, tzinfo=UTC),
        "attempt": 2,
        "signed": [SignedLine(Party.DEPARTMENT, "wang.li", "approve", datetime(2027, 3, 9, 2, 0, tzinfo=UTC))],
        "verdicts": {"stress test 压力测试": "passed 通过"},
        **fields,
    }
    return signoff_description(FormContext(**values))


def test_the_stress_test_numbers_are_shown_inline_each_against_its_threshold(spec: Spec, tmp_path: Path) -> None:
    text = form(spec, summary=summary_of(tmp_path))

    for row in (
        "| Users 并发用户数 | 20 |",
        "| Duration 持续时间 | 10 s (ran 实际 11.2 s) |",
        "| Requests 请求数 | 1000 (2 failed 失败) |",
        "| Failure ratio 失败率 | 0.20% | <= 1.00% | ✔ pass 通过 |",
        "| P95 latency 延迟 (ms) | 120 | <= 800 | ✔ pass 通过 |",
        "| Throughput 吞吐量 (req/s) | 45.7 | >= 40.0 | ✔ pass 通过 |",
    ):
        assert row in text
    assert "**Stress test 压力测试: ✔ passed 通过**" in text


def test_a_missed_p95_threshold_is_shown_as_failed_with_the_reason(spec: Spec, tmp_path: Path) -> None:
    text = form(spec, summary=summary_of(tmp_path, p95=912))

    assert "| P95 latency 延迟 (ms) | 912 | <= 800 | ✘ fail 未通过 |" in text
    assert "✘ failed 未通过** — missed thresholds" in text
    assert "✘ not all tests passed 测试未全部通过" in text


def test_each_internal_test_is_shown_with_its_result_and_duration(spec: Spec, tmp_path: Path) -> None:
    text = form(spec, summary=summary_of(tmp_path))

    assert "| 自检 | ssh | ✔ pass 通过 | 1.25 s | — |" in text
    assert "| 统计接口 | http_check | ✔ pass 通过 | 0.05 s | 200 OK |" in text


def test_the_trial_run_period_is_shown_with_its_length_against_the_spec_minimum(spec: Spec, tmp_path: Path) -> None:
    text = form(spec, summary=summary_of(tmp_path))

    assert "| Period 时段 | 2027-03-01 01:00 UTC → 2027-03-08 01:00 UTC |" in text
    assert "| Length 时长 | 7 d 0 h (minimum 最短 7 d 0 h) ✔ pass 通过 |" in text
    assert "| Health samples 健康检查 | 20160 checks 次, 3 failed 失败 ✘ fail 未通过 |" in text
    assert "- 夜间批处理偶发超时 nightly batch occasionally slow" in text


def test_a_trial_run_shorter_than_the_spec_minimum_is_marked_failed(spec: Spec, tmp_path: Path) -> None:
    text = form(spec, summary=summary_of(tmp_path, minimum=timedelta(days=14)))

    assert "| Length 时长 | 7 d 0 h (minimum 最短 14 d 0 h) ✘ fail 未通过 |" in text


def test_both_digests_are_shown_whole_each_alone_in_a_code_block(spec: Spec) -> None:
    text = form(spec)

    assert f"```text\n{REPORT_DIGEST}\n```" in text
    assert f"```text\n{SPEC_DIGEST}\n```" in text
    assert f"| `{REPORT_DIGEST}` |" not in text  # no longer in a table cell the UI cuts off


def test_a_refusal_is_the_first_thing_on_the_next_form(spec: Spec, tmp_path: Path) -> None:
    reason = "the report was voided: the spec changed (方案已变更)"

    text = form(spec, summary=summary_of(tmp_path), last_refusal=reason)

    assert text.startswith("> **⚠ The previous submission was refused 上次提交未通过:** " + reason)
    assert text.index(reason) < text.index("## Joint sign-off") < text.index("### Signatures")


def test_notices_are_shown_at_the_top_with_the_refusal_each_line_quoted(spec: Spec) -> None:
    text = form(
        spec,
        last_refusal="wang.li signed for both parties; the two parties must be two different people",
        notices=["the signature does not verify with zhao.min's public key\nsign the statement shown below"],
    )

    callout = text.split("\n\n## Joint sign-off")[0]
    assert "two different people" in callout and "does not verify" in callout
    assert all(line.startswith(">") for line in callout.splitlines())


def test_a_form_without_refusal_or_notices_starts_with_its_title(spec: Spec) -> None:
    assert form(spec).startswith("## Joint sign-off 共同认可")


def test_the_callers_how_to_sign_replaces_the_code_instructions(spec: Spec) -> None:
    how = "### How to sign 如何签署\n\n`cutover sign sys --as zhao.min --key approver.pem`"

    text = form(spec, how_to_sign=how)

    assert text.endswith(how)
    assert "6-digit code" not in text


def test_without_how_to_sign_the_code_instructions_remain(spec: Spec) -> None:
    text = form(spec)

    assert "6-digit code" in text and f"cutover sign {spec.system.id} --as" in text


def test_the_report_link_shows_its_address_so_a_terminal_shows_it_too(spec: Spec) -> None:
    url = "http://127.0.0.1:4200/v2/artifacts/artifact/5ab9f64f-faef-4032-89f1-0ea85a133e47"

    assert f"| Report 报告 | [{url}]({url}) |" in form(spec)


def test_a_form_built_with_the_old_positional_fields_still_renders(spec: Spec) -> None:
    context = FormContext(
        spec, ReportKind.TRIAL_RUN, REPORT_DIGEST, SPEC_DIGEST, "", datetime(2027, 3, 15, tzinfo=UTC), 1, [], {}, None
    )

    text = signoff_description(context)

    assert "(no link given)" in text and "*awaited 待签*" in text and "Key numbers" not in text


def test_the_form_reads_in_a_terminal_with_the_digests_whole(spec: Spec, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, legacy_windows=False)

    console.print(Markdown(form(spec, summary=summary_of(tmp_path), last_refusal="code for x is not valid")))

    shown = out.getvalue()
    assert REPORT_DIGEST in shown and SPEC_DIGEST in shown
    assert shown.index("code for x is not valid") < shown.index("Joint sign-off")
    assert "0.20%" in shown and "<= 800" in shown
