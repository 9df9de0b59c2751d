"""The sign-off statement (cutover/statement.py): one canonical text per decision, parsed back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from cutover.errors import SignatureInvalid
from cutover.statement import STATEMENT_HEADER, Statement

SIGNED_AT = datetime(2026, 12, 2, 11, 50, 0, tzinfo=UTC)


def _statement(**changes: object) -> Statement:
    fields: dict[str, object] = {
        "system_id": "hrss-social-insurance",
        "report_kind": "trial_run",
        "report_digest": "sm3:" + "ab" * 32,
        "spec_digest": "sm3:" + "cd" * 32,
        "decision": "approve",
        "comment": "同意迁移",
        "signed_at": SIGNED_AT,
        "run_id": "0b6c7a5e-1f2d-4c3b-9a8e-7d6c5b4a3f2e",
        "approver_id": "wang.li",
    }
    return Statement.model_validate({**fields, **changes})


def test_the_text_is_the_header_and_the_fields_in_a_fixed_order_without_a_trailing_newline() -> None:
    assert _statement().text() == (
        f"{STATEMENT_HEADER}\n"
        "system: hrss-social-insurance\n"
        "report-kind: trial_run\n"
        f"report-digest: sm3:{'ab' * 32}\n"
        f"spec-digest: sm3:{'cd' * 32}\n"
        "decision: approve\n"
        "comment: 同意迁移\n"
        "signed-at: 2026-12-02T11:50:00Z\n"
        "run: 0b6c7a5e-1f2d-4c3b-9a8e-7d6c5b4a3f2e\n"
        "approver: wang.li"
    )


def test_the_message_is_the_text_in_utf8() -> None:
    statement = _statement()
    assert statement.message() == statement.text().encode("utf-8")


def test_a_chinese_comment_with_newlines_and_backslashes_stays_on_one_line_and_round_trips() -> None:
    statement = _statement(comment="同意。\n条件：\r\n1) 路径 C:\\data\\n 不变")
    text = statement.text()

    assert "comment: 同意。\\n条件：\\r\\n1) 路径 C:\\\\data\\\\n 不变" in text.split("\n")
    assert len(text.split("\n")) == 10
    assert Statement.parse(text) == statement


def test_an_empty_comment_is_a_bare_key_line_and_round_trips() -> None:
    statement = _statement(decision="withdraw", comment="   ")
    assert "\ncomment:\n" in statement.text()
    assert Statement.parse(statement.text()) == statement


def test_signed_at_is_normalised_to_utc_whole_seconds() -> None:
    beijing = timezone(timedelta(hours=8))
    statement = _statement(signed_at=datetime(2026, 12, 2, 19, 50, 0, 987654, tzinfo=beijing))
    assert statement.signed_at == SIGNED_AT
    assert "signed-at: 2026-12-02T11:50:00Z" in statement.text()


def test_a_naive_time_a_field_with_whitespace_or_an_unknown_decision_is_refused() -> None:
    for changes in ({"signed_at": datetime(2026, 12, 2)}, {"system_id": "hrss x"}, {"decision": "maybe"}):
        with pytest.raises(ValidationError):
            _statement(**changes)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda text: text + "\n", "lines"),
        (lambda text: text.replace("v1", "v2"), "first line"),
        (lambda text: text.replace("decision: approve", "decision:  approve"), "decision"),
        (lambda text: text.replace("comment: 同意迁移", "comment: 同意\\t迁移"), "unknown escape"),
        (lambda text: text.replace("11:50:00Z", "11:50:00+00:00"), "signed-at"),
        (lambda text: text.replace("system: ", "system:"), "expected the line 'system'"),
        (lambda text: text.replace("comment: 同意迁移", "comment: 同意迁移 "), "canonical form"),
        (lambda text: text.replace("\n", "\r\n"), "canonical"),
    ],
)
def test_parsing_refuses_anything_not_canonical_with_a_clear_reason(edit: object, reason: str) -> None:
    text = edit(_statement().text())  # type: ignore[operator]
    with pytest.raises(SignatureInvalid, match="not a canonical sign-off statement") as refused:
        Statement.parse(text)
    assert reason in str(refused.value)
