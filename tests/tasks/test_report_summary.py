"""The report's key numbers and artifact id, kept in the audit trail for the sign-off form."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from cutover import audit
from cutover.ledger import Ledger
from tasks.report import record_published, render_report, report_artifact_id, report_summary, summarize
from tests.tasks.test_report import evidence


def test_the_summary_states_the_numbers_the_report_was_rendered_from(tmp_path: Path) -> None:
    facts = evidence(tmp_path)
    rendered = render_report(facts)

    summary = summarize(facts, rendered.digest, trial_run_minimum=timedelta(days=7))

    assert summary.report_digest == rendered.digest
    assert (summary.stress.users, summary.stress.duration_s, summary.stress.requests) == (20, 10, 1000)
    assert summary.stress.verdict("p95_ms") is not None and summary.stress.p95_ms == 120
    assert summary.stress.failure_ratio == facts.stress.failure_ratio
    assert [t.name for t in summary.internal_tests] == ["自检", "统计接口"]
    assert (summary.trial_run.checks, summary.trial_run.failures) == (20160, 3)
    assert summary.trial_run.length == timedelta(days=7) and summary.trial_run.long_enough


def test_a_kept_summary_and_artifact_id_are_read_back_for_their_report_digest(
    isolated_ledger: Ledger, tmp_path: Path
) -> None:
    ledger = isolated_ledger  # a ledger of its own: the whole audit chain is verified below
    system_id = f"sys-{uuid.uuid4().hex[:8]}"
    facts = evidence(tmp_path)
    summary = summarize(facts, render_report(facts).digest, trial_run_minimum=timedelta(days=7))
    artifact_id = uuid.uuid4()

    record_published(ledger, system_id, summary, artifact_id=artifact_id, table_artifact_id=uuid.uuid4())

    assert report_summary(ledger, system_id, summary.report_digest) == summary
    assert report_artifact_id(ledger, system_id, summary.report_digest) == artifact_id
    assert audit.verify(ledger).ok


def test_another_report_digest_or_system_has_no_summary(ledger: Ledger, tmp_path: Path) -> None:
    system_id = f"sys-{uuid.uuid4().hex[:8]}"
    facts = evidence(tmp_path)
    summary = summarize(facts, render_report(facts).digest, trial_run_minimum=None)
    record_published(ledger, system_id, summary, artifact_id=None)

    assert report_summary(ledger, system_id, "sm3:" + "00" * 32) is None
    assert report_summary(ledger, f"{system_id}-other", summary.report_digest) is None
    assert report_artifact_id(ledger, system_id, summary.report_digest) is None


def test_the_newest_summary_of_a_digest_wins(ledger: Ledger, tmp_path: Path) -> None:
    system_id = f"sys-{uuid.uuid4().hex[:8]}"
    facts = evidence(tmp_path)
    digest = render_report(facts).digest
    record_published(ledger, system_id, summarize(facts, digest, trial_run_minimum=None), artifact_id=uuid.uuid4())
    newer = uuid.uuid4()
    record_published(ledger, system_id, summarize(facts, digest, trial_run_minimum=None), artifact_id=newer)

    assert report_artifact_id(ledger, system_id, digest) == newer
