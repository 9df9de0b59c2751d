"""The trial-run report (试运行结果报告): the one document both parties sign.

:func:`render_report` turns :class:`ReportEvidence` into Markdown (Chinese and English headings)
and a latency chart in SVG, and digests both (SM3 by default). Rendering is a pure function of
the evidence, including the issue time, which is passed in: the same evidence gives the same
bytes and the same digest, and any change to the evidence (one number) changes the digest; the
report states the digest of the evidence itself so even a change below display precision shows.

:func:`write_report` stores the files; :func:`publish_report` shows the report in the Prefect UI
as artifacts: the same Markdown with the chart inlined as a ``data:`` URI (the UI cannot load the
file beside it), and every earlier version of the artifact marked "VOIDED 已作废 — superseded by
<digest>". :func:`summarize` / :func:`record_published` keep the key numbers and the artifact id
for the sign-off form, :func:`report_summary` / :func:`report_artifact_id` read them back.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

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
from tasks._report_summary import (
    ReportSummary,
    StressSummary,
    TrialRunSummary,
    record_published,
    report_artifact_id,
    report_summary,
    summarize,
)
from tasks._report_svg import latency_chart

__all__ = [
    "VOIDED",
    "InternalTestResult",
    "PartiesRef",
    "PartyRef",
    "RenderedReport",
    "ReportEvidence",
    "ReportPaths",
    "ReportSummary",
    "StressSummary",
    "SystemRef",
    "TestEnvironment",
    "TrialRunHealth",
    "TrialRunSummary",
    "artifact_key",
    "artifact_markdown",
    "publish_report",
    "record_published",
    "render_report",
    "report_artifact_id",
    "report_summary",
    "summarize",
    "void_superseded",
    "write_report",
]

REPORT_FILE = "trial-run-report.md"
DIGEST_FILE = "trial-run-report.digest"
_ARTIFACT_KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
#: How a superseded report's artifact starts (its description and its Markdown).
VOIDED = "VOIDED 已作废"


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


def artifact_markdown(rendered: RenderedReport) -> str:
    """The report as the Prefect UI shows it: the chart inlined, the digest stated, no link to a file.

    The UI cannot load ``latency.svg`` or ``locust-report.html`` beside the report (a broken image,
    a dead link), so the chart becomes a ``data:image/svg+xml;base64`` URI (rendered by both UIs)
    and the locust report is named, not linked. The digest is of the report *file* and its chart.
    """
    chart = base64.b64encode(rendered.svg.encode("utf-8")).decode("ascii")
    text = rendered.markdown.replace(f"]({CHART_FILE})", f"](data:image/svg+xml;base64,{chart})")
    text = text.replace(
        f"[{LOCUST_HTML_FILE}]({LOCUST_HTML_FILE})", f"`{LOCUST_HTML_FILE}` (报告目录 in the report directory)"
    )
    digest_note = (
        f"> 报告摘要 Report digest (of `{REPORT_FILE}` + `{CHART_FILE}`, what the parties sign):\n>\n"
        f"> `{rendered.digest}`\n\n"
    )
    return digest_note + text


def publish_report(rendered: RenderedReport, key: str) -> tuple[UUID, UUID]:
    """Show the report in the Prefect UI: a Markdown artifact ``key`` and a table artifact ``key-stress``.

    Returns the two artifact ids (link the report with ``/artifacts/artifact/<id>``: the key's page
    lists every version). Earlier versions of both keys that state another digest are marked
    ``VOIDED 已作废 — superseded by <digest>`` (:func:`void_superseded`). ``key`` must be lowercase
    letters, digits and dashes (see :func:`artifact_key`).
    """
    if not _ARTIFACT_KEY.match(key):
        raise ValueError(
            f"artifact key {key!r} is invalid: Prefect allows only lowercase letters, digits and dashes; "
            f"build it with artifact_key(...), e.g. {_suggest(key)!r}"
        )
    # _sync=True: create it now even inside an async flow, never hand back a coroutine
    report_id = create_markdown_artifact(  # type: ignore[call-arg]
        markdown=artifact_markdown(rendered),
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
    ids = _created(report_id), _created(table_id)
    void_superseded(key, rendered.digest, keep=ids)
    return ids


def void_superseded(key: str, digest: str, *, keep: tuple[UUID, ...] = ()) -> int:
    """Mark every version of ``key`` and ``key-stress`` not about ``digest`` as superseded by it.

    The description (shown in every list) and a Markdown version's text start with ``VOIDED 已作废``.
    Versions already marked, about ``digest`` itself, or in ``keep`` are left alone. Returns how many
    were marked.
    """
    marked = 0
    with get_client(sync_client=True) as client:
        versions = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key, f"{key}-stress"]))
        )
        for artifact in versions:
            description = artifact.description or ""
            if artifact.id in keep or digest in description or description.startswith(VOIDED):
                continue
            notice = f"{VOIDED} — superseded by {digest}"
            update = ArtifactUpdate(description=f"{notice}. {description}")
            if artifact.type == "markdown" and isinstance(artifact.data, str):
                callout = f"> ⚠ **{notice}**: 本报告已作废，请勿据此签署。Do not sign this report.\n\n"
                update = ArtifactUpdate(description=update.description, data=callout + artifact.data)
            client.update_artifact(artifact.id, update)
            marked += 1
    return marked


def _suggest(key: str) -> str:
    return artifact_key(key) if re.search("[A-Za-z0-9]", key) else "trial-run"


def _created(result: UUID | Coroutine[Any, Any, UUID]) -> UUID:
    if isinstance(result, UUID):
        return result
    result.close()
    raise TypeError("Prefect returned a coroutine although _sync=True was passed; this Prefect version is unsupported")
