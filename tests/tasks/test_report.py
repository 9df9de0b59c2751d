"""The trial-run report: deterministic bytes, a digest that binds every number, both languages."""

from __future__ import annotations

import base64
import json
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from cutover.digest import digest_bytes
from tasks._locust_stats import EndpointMetrics, FailureRecord, HistoryPoint
from tasks.loadtest import StressResult, ThresholdVerdict
from tasks.report import (
    VOIDED,
    InternalTestResult,
    PartiesRef,
    PartyRef,
    ReportEvidence,
    SystemRef,
    TestEnvironment,
    TrialRunHealth,
    artifact_key,
    artifact_markdown,
    publish_report,
    render_report,
    write_report,
)

CST = timezone(timedelta(hours=8))
SVG = "{http://www.w3.org/2000/svg}"


def metrics(name: str, method: str = "GET", p95: float = 120, rps: float = 45.71) -> EndpointMetrics:
    return EndpointMetrics(
        name=name,
        method=method,
        requests=1000,
        failures=2,
        median_ms=40,
        p50_ms=40,
        p95_ms=p95,
        p99_ms=p95 + 30,
        avg_ms=45.5,
        max_ms=300,
        rps=rps,
    )


def stress_result(tmp: Path, *, p95: float = 120, rps: float = 45.71, history: bool = True) -> StressResult:
    html = tmp / "stress.html"
    html.write_text("<html>locust</html>", encoding="utf-8")
    points = tuple(
        HistoryPoint(
            timestamp=1_700_000_000 + s,
            users=20,
            rps=0.0 if s == 0 else 90.0 + s,
            failures_per_s=0.0,
            p50_ms=40.0 + s,
            p95_ms=100.0 + 2 * s,
            requests=90 * s,
            failures=0,
        )
        for s in range(10)
    )
    return StressResult(
        base_url="http://127.0.0.12:8000",
        users=20,
        spawn_rate=10,
        planned_duration_s=10,
        elapsed_s=11.2,
        locust_version="2.47.0",
        exit_code=0,
        overall=metrics("Aggregated", method="", p95=p95, rps=rps),
        endpoints=(metrics("参保人查询 | insured", p95=p95), metrics("缴费登记", method="POST")),
        thresholds=(
            ThresholdVerdict(name="p95_ms", comparison="<=", limit=800, measured=p95, passed=p95 <= 800),
            ThresholdVerdict(name="failure_ratio", comparison="<=", limit=0.01, measured=0.002, passed=True),
            ThresholdVerdict(name="min_rps", comparison=">=", limit=40, measured=rps, passed=rps >= 40),
        ),
        errors=(
            FailureRecord(method="GET", name="参保人查询 | insured", error="CatchResponseError('x')", occurrences=2),
        ),
        history=points if history else (),
        completed=True,
        passed=p95 <= 800 and rps >= 40,
        reason=None if p95 <= 800 and rps >= 40 else "missed thresholds",
        html_report=html,
        stats_csv=tmp / "stress_stats.csv",
        history_csv=tmp / "stress_stats_history.csv",
        failures_csv=tmp / "stress_failures.csv",
        log_path=tmp / "stress.log",
    )


def evidence(tmp: Path, *, issued_at: Any = None, **stress: Any) -> ReportEvidence:
    result = stress_result(tmp, **stress)
    return ReportEvidence(
        system=SystemRef(id="hrss-social-insurance", name="社会保险信息系统", department="省人力资源和社会保障厅"),
        parties=PartiesRef(
            department=PartyRef(name="省人力资源和社会保障厅", approvers=("王丽",)),
            cloud_provider=PartyRef(name="政务云服务商", approvers=("赵敏",)),
        ),
        spec_digest="sm3:" + "ab" * 32,
        environment=TestEnvironment.from_stress(result),
        stress=result,
        internal_tests=(
            InternalTestResult(name="自检", kind="ssh", target="cloud_test", passed=True, duration_s=1.25),
            InternalTestResult(
                name="统计接口",
                kind="http_check",
                target="http://127.0.0.12:8000/api/stats",
                passed=True,
                duration_s=0.05,
                detail="200 OK",
            ),
        ),
        health=TrialRunHealth(
            checks=20160,
            failures=3,
            p50_ms=35.0,
            p95_ms=80.5,
            period_start=datetime(2027, 3, 1, 9, 0, tzinfo=CST),
            period_end=datetime(2027, 3, 8, 9, 0, tzinfo=CST),
        ),
        open_problems=("夜间批处理偶发超时 nightly batch occasionally slow",),
        issued_at=issued_at or datetime(2027, 3, 8, 10, 0, tzinfo=CST),
    )


def test_rendering_the_same_evidence_twice_gives_the_same_bytes_and_digest(tmp_path: Path) -> None:
    first, second = render_report(evidence(tmp_path)), render_report(evidence(tmp_path))

    assert first.markdown == second.markdown and first.svg == second.svg
    assert first.digest == second.digest
    assert first.digest.startswith("sm3:")
    assert first.digest == digest_bytes(first.markdown.encode() + first.svg.encode(), "sm3")


def test_changing_one_number_changes_the_digest(tmp_path: Path) -> None:
    base = render_report(evidence(tmp_path)).digest

    assert render_report(evidence(tmp_path, p95=121)).digest != base
    assert render_report(evidence(tmp_path, rps=45.7100001)).digest != base  # below display precision too


def test_the_digest_algorithm_can_be_chosen(tmp_path: Path) -> None:
    assert render_report(evidence(tmp_path), "sha256").digest.startswith("sha256:")


def test_headings_are_in_chinese_and_english(tmp_path: Path) -> None:
    text = render_report(evidence(tmp_path)).markdown

    for heading in (
        "# 试运行结果报告 Trial-run report",
        "## 结论 Conclusion",
        "## 测试环境 Test environment",
        "## 压力测试 Stress test",
        "### 各接口 Per endpoint",
        "### 阈值判定 Threshold verdicts",
        "## 内部测试 Internal tests",
        "## 试运行 Trial run",
        "## 遗留问题 Open problems",
        "## 共同认可 Joint sign-off",
    ):
        assert f"\n{heading}" in f"\n{text}", heading


def test_threshold_verdicts_show_measured_and_limit_with_a_mark(tmp_path: Path) -> None:
    text = render_report(evidence(tmp_path, p95=912)).markdown

    assert "| P95 延迟 latency (ms) | <= 800.0 | 912.0 | ✘ |" in text
    assert "| 失败率 Failure ratio | <= 1.00% | 0.20% | ✔ |" in text
    assert "不得割接" in text


def test_table_cells_escape_pipes_in_endpoint_names(tmp_path: Path) -> None:
    text = render_report(evidence(tmp_path)).markdown

    assert "| GET 参保人查询 \\| insured | 1000 |" in text


def test_the_chart_is_valid_svg_with_a_line_for_p50_and_p95(tmp_path: Path) -> None:
    root = ET.fromstring(render_report(evidence(tmp_path)).svg.encode("utf-8"))

    assert root.tag == f"{SVG}svg"
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    assert all(len(line.get("points", "").split()) == 9 for line in lines)  # the zero-rps first second is left out
    assert any("Latency" in (t.text or "") for t in root.iter(f"{SVG}text"))


def test_a_chart_without_measurements_is_still_valid_svg(tmp_path: Path) -> None:
    root = ET.fromstring(render_report(evidence(tmp_path, history=False)).svg.encode("utf-8"))

    assert not root.findall(f"{SVG}polyline")
    assert any("No measurements" in (t.text or "") for t in root.iter(f"{SVG}text"))


def test_a_report_links_the_chart_and_the_locust_html_report(tmp_path: Path) -> None:
    text = render_report(evidence(tmp_path)).markdown

    assert "](latency.svg)" in text and "](locust-report.html)" in text


def test_write_report_stores_the_rendered_bytes_and_their_digest(tmp_path: Path) -> None:
    rendered = render_report(evidence(tmp_path))

    paths = write_report(rendered, tmp_path / "out")

    assert digest_bytes(paths.markdown.read_bytes() + paths.svg.read_bytes()) == rendered.digest
    assert paths.digest.read_text(encoding="utf-8").startswith(rendered.digest)
    assert paths.locust_html is not None and paths.locust_html.read_text(encoding="utf-8") == "<html>locust</html>"


def test_an_issue_time_without_a_timezone_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        evidence(tmp_path, issued_at=datetime(2027, 3, 8, 10, 0))


def test_the_issue_time_is_written_as_given(tmp_path: Path) -> None:
    text = render_report(evidence(tmp_path, issued_at=datetime(2027, 3, 8, 2, 0, tzinfo=UTC))).markdown

    assert "2027-03-08T02:00:00+00:00" in text


def test_artifact_key_makes_a_key_prefect_accepts_from_a_system_id() -> None:
    assert artifact_key("HRSS.social_insurance", "trial-run") == "hrss-social-insurance-trial-run"


def test_publish_report_refuses_a_key_prefect_would_refuse_before_calling_prefect(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lowercase letters, digits and dashes.*'hrss-social-insurance'"):
        publish_report(render_report(evidence(tmp_path)), "HRSS_social.insurance")


def test_publishing_puts_the_report_and_the_stress_table_into_prefect(prefect_server: Any, tmp_path: Path) -> None:
    from prefect import flow
    from prefect.artifacts import Artifact

    rendered = render_report(evidence(tmp_path))
    key = artifact_key("report", uuid.uuid4().hex[:8])

    @flow(name="publish-report-test")
    def publish() -> tuple[UUID, UUID]:
        return publish_report(rendered, key)

    report_id, table_id = publish()

    report, table = Artifact.get(key), Artifact.get(f"{key}-stress")
    assert report is not None and report.id == report_id and report.data == artifact_markdown(rendered)
    assert table is not None and table.id == table_id
    assert json.loads(str(table.data)) == [dict(row) for row in rendered.stress_table]
    assert rendered.digest in (report.description or "")


def test_the_artifact_shows_the_chart_inline_and_links_no_file_the_ui_cannot_load(tmp_path: Path) -> None:
    rendered = render_report(evidence(tmp_path))

    text = artifact_markdown(rendered)

    inline = "data:image/svg+xml;base64," + base64.b64encode(rendered.svg.encode("utf-8")).decode("ascii")
    assert f"]({inline})" in text
    assert "](latency.svg)" not in text and "](locust-report.html)" not in text
    assert f"`{rendered.digest}`" in text


def test_the_report_file_keeps_its_chart_beside_it(tmp_path: Path) -> None:
    rendered = render_report(evidence(tmp_path))

    assert "](latency.svg)" in rendered.markdown and "data:image" not in rendered.markdown


def test_a_new_report_marks_every_earlier_version_voided_and_superseded(prefect_server: Any, tmp_path: Path) -> None:
    from prefect import flow

    old, new = render_report(evidence(tmp_path)), render_report(evidence(tmp_path, p95=121))
    key = artifact_key("report", uuid.uuid4().hex[:8])

    @flow(name="publish-report-twice-test")
    def publish_twice() -> tuple[tuple[UUID, UUID], tuple[UUID, UUID]]:
        return publish_report(old, key), publish_report(new, key)

    (old_id, old_table_id), (new_id, _) = publish_twice()

    versions = _versions(key, f"{key}-stress")
    stale, stale_table, current = versions[old_id], versions[old_table_id], versions[new_id]
    notice = f"{VOIDED} — superseded by {new.digest}"
    assert (stale.description or "").startswith(notice)
    assert str(stale.data).startswith(f"> ⚠ **{notice}**")
    assert (stale_table.description or "").startswith(notice)
    assert VOIDED not in (current.description or "") and VOIDED not in str(current.data)


def _versions(*keys: str) -> dict[UUID, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))))
    return {artifact.id: artifact for artifact in found}
