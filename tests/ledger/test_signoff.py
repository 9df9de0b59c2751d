"""Tests of reports, signatures and approvers (cutover/ledger/_signoff.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from cutover.digest import digest_bytes
from cutover.errors import LedgerError
from cutover.ledger import Decision, Ledger, Party, ReportKind, RunKind

NewSystem = Callable[[Ledger], str]


def test_a_report_is_stored_with_the_digest_of_its_content(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    run = ledger.create_run(system_id, RunKind.CUTOVER)

    report = ledger.create_report(run.id, system_id, ReportKind.TRIAL_RUN, "# 试运行报告\np95 = 420 ms")

    latest = ledger.latest_report(system_id, ReportKind.TRIAL_RUN)
    assert latest is not None and latest.id == report.id
    assert latest.digest == digest_bytes("# 试运行报告\np95 = 420 ms".encode(), "sm3")
    assert ledger.latest_report(system_id, ReportKind.DECOMMISSION) is None


def test_voided_reports_and_signatures_are_kept_but_no_longer_count(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    report = ledger.create_report(run.id, system_id, ReportKind.TRIAL_RUN, "report")
    approver = f"zhao.min-{uuid.uuid4().hex[:6]}"
    ledger.enroll_approver(approver, "赵敏", b"ciphertext")
    ledger.add_signature(
        run_id=run.id,
        system_id=system_id,
        party=Party.CLOUD_PROVIDER,
        approver_id=approver,
        decision=Decision.REJECT,
        report_digest=report.digest,
        spec_digest="sm3:spec",
        comment="p95 too high",
    )
    assert [s.comment for s in ledger.signatures_for(system_id, report_digest=report.digest)] == ["p95 too high"]

    assert (ledger.void_reports(system_id), ledger.void_signatures(system_id)) == (1, 1)

    assert ledger.latest_report(system_id, ReportKind.TRIAL_RUN) is None
    assert ledger.signatures_for(system_id) == []
    (voided,) = ledger.signatures_for(system_id, valid_only=False)
    assert not voided.valid and voided.voided_at is not None
    stored = ledger.get_report(report.id)
    assert stored is not None and stored.voided_at is not None


def test_a_totp_counter_is_accepted_once_and_never_an_older_one(ledger: Ledger) -> None:
    approver = f"wang.li-{uuid.uuid4().hex[:6]}"
    ledger.enroll_approver(approver, "王丽", b"ciphertext")

    assert ledger.consume_totp_counter(approver, 1000)
    assert not ledger.consume_totp_counter(approver, 1000)
    assert not ledger.consume_totp_counter(approver, 999)
    assert ledger.consume_totp_counter(approver, 1001)


def test_re_enrolling_an_approver_replaces_the_secret_and_resets_the_counter(ledger: Ledger) -> None:
    approver = f"wang.li-{uuid.uuid4().hex[:6]}"
    ledger.enroll_approver(approver, "王丽", b"old")
    ledger.consume_totp_counter(approver, 5000)

    ledger.enroll_approver(approver, "王丽", b"new")

    stored = ledger.get_approver(approver)
    assert stored is not None and (stored.totp_secret_encrypted, stored.last_used_counter) == (b"new", None)
    assert ledger.consume_totp_counter(approver, 10)


def test_a_counter_for_an_approver_never_enrolled_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="approver 'ghost' is not enrolled"):
        ledger.consume_totp_counter("ghost", 1)
