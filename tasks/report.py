"""The trial-run report (试运行结果报告): the one document both parties sign.

:func:`render_report` turns :class:`ReportEvidence` into Markdown (Chinese and English headings)
and a latency chart in SVG, and digests both (SM3 by default). Rendering is a pure function of
the evidence, including the issue time, which is passed in: the same evidence gives the same
bytes and the same digest, and any change to the evidence (one number) changes the digest; the
report states the digest of the evidence itself so even a change below display precision shows.

:func:`write_report` stores the files; :func:`publish_report` shows the report in the Prefect UI
as artifacts.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from cutover.digest import Algorithm, digest_bytes
from tasks._report_models import (
    InternalTestResult,
    PartiesRef,
    PartyRef,
    RenderedReport,
    ReportEvidence,
    ReportPaths,
    SystemRef,
    TestEnvironment,
    TrialRunHealth,
)
from tasks._report_render import CHART_FILE, LOCUST_HTML_FILE, endpoint_row, markdown
from tasks._report_svg import latency_chart

__all__ = [
    "InternalTestResult",
    "PartiesRef",
    "PartyRef",
    "RenderedReport",
    "ReportEvidence",
    "ReportPaths",
    "SystemRef",
    "TestEnvironment",
    "TrialRunHealth",
    "artifact_key",
    "publish_report",
    "render_report",
    "write_report",
]

REPORT_FILE = "trial-run-report.md"
DIGEST_FILE = "trial-run-report.digest"
_ARTIFACT_KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def render_report(evidence: ReportEvidence, algorithm: Algorithm = "sm3") -> RenderedReport:
    """Render the report and its chart; ``digest`` is ``digest_bytes(markdown + svg, algorithm)``."""
    text = markdown(evidence, algorithm)
    p95_limit = next((v.limit for v in evidence.stress.thresholds if v.name == "p95_ms"), None)
    svg = latency_chart(evidence.stress.history, p95_limit)
    return RenderedReport(
        markdown=text,
        svg=svg,
        digest=digest_bytes(text.encode("utf-8") + svg.encode("utf-8"), algorithm),
        stress_table=tuple(endpoint_row(m) for m in evidence.stress.endpoints),
        locust_html=evidence.stress.html_report,
    )


def write_report(rendered: RenderedReport, directory: Path) -> ReportPaths:
    """Write the report, its chart, its digest and a copy of locust's HTML report into ``directory``.

    The files are written byte for byte as rendered, so their digest can be checked again later:
    ``digest_bytes(report.md bytes + latency.svg bytes)`` equals the line in the digest file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        markdown=directory / REPORT_FILE,
        svg=directory / CHART_FILE,
        digest=directory / DIGEST_FILE,
        locust_html=directory / LOCUST_HTML_FILE if rendered.locust_html else None,
    )
    paths.markdown.write_bytes(rendered.markdown.encode("utf-8"))
    paths.svg.write_bytes(rendered.svg.encode("utf-8"))
    paths.digest.write_text(f"{rendered.digest}  {REPORT_FILE}+{CHART_FILE}\n", encoding="utf-8")
    if rendered.locust_html is not None and paths.locust_html is not None:
        shutil.copyfile(rendered.locust_html, paths.locust_html)
    return paths


def artifact_key(*parts: str) -> str:
    """A valid Prefect artifact key from ``parts``: lowercase letters, digits, single dashes.

    ``artifact_key("hrss.social_insurance", "trial-run")`` is ``"hrss-social-insurance-trial-run"``.
    """
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    if not key:
        raise ValueError(f"cannot make an artifact key from {parts!r}: give at least one letter or digit")
    return key


def publish_report(rendered: RenderedReport, key: str) -> tuple[UUID, UUID]:
    """Show the report in the Prefect UI: a Markdown artifact ``key`` and a table artifact ``key-stress``.

    Returns the two artifact ids. ``key`` must be lowercase letters, digits and dashes (see
    :func:`artifact_key`).
    """
    if not _ARTIFACT_KEY.match(key):
        raise ValueError(
            f"artifact key {key!r} is invalid: Prefect allows only lowercase letters, digits and dashes; "
            f"build it with artifact_key(...), e.g. {_suggest(key)!r}"
        )
    # _sync=True: create it now even inside an async flow, never hand back a coroutine
    report_id = create_markdown_artifact(  # type: ignore[call-arg]
        markdown=rendered.markdown,
        key=key,
        description=f"试运行结果报告 Trial-run report, digest {rendered.digest}",
        _sync=True,
    )
    table_id = create_table_artifact(  # type: ignore[call-arg]
        table=[dict(row) for row in rendered.stress_table],
        key=f"{key}-stress",
        description=f"压力测试各接口 Stress test per endpoint (report digest {rendered.digest})",
        _sync=True,
    )
    return _created(report_id), _created(table_id)


def _suggest(key: str) -> str:
    return artifact_key(key) if re.search("[A-Za-z0-9]", key) else "trial-run"


def _created(result: UUID | Coroutine[Any, Any, UUID]) -> UUID:
    if isinstance(result, UUID):
        return result
    result.close()
    raise TypeError("Prefect returned a coroutine although _sync=True was passed; this Prefect version is unsupported")
