"""The sign-off statement: the one canonical text an approver signs.

Public surface::

    STATEMENT_HEADER                   the statement's first line (names the format and version)
    Statement(system_id=..., ...)      .text() -> str   .message() -> bytes   Statement.parse(text)

The text is the header, then one ``key: value`` line per field in a fixed order, LF-separated,
with no trailing newline; UTF-8 is what is signed (:meth:`Statement.message`)::

    govcloud-cutover sign-off statement v1
    system: hrss-social-insurance
    report-kind: trial_run
    report-digest: sm3:66c7f0f4...
    spec-digest: sm3:9a1b...
    decision: approve
    comment: 同意迁移\\n按计划执行
    signed-at: 2026-12-02T11:50:00Z
    run: 0b6c7a5e-...
    approver: wang.li

The comment is the only free text; it is trimmed and escaped so it stays on one line (``\\`` as
``\\\\``, LF as ``\\n``, CR as ``\\r``). An empty comment is the line ``comment:``. Every other value
is one token without whitespace. :meth:`Statement.parse` is the exact inverse of
:meth:`Statement.text` and refuses anything that is not canonical, so one decision has exactly one
text (and one signature check).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cutover.errors import SignatureInvalid

__all__ = ["STATEMENT_HEADER", "Decision", "Statement"]

STATEMENT_HEADER = "govcloud-cutover sign-off statement v1"

Decision = Literal["approve", "reject", "withdraw"]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: (line key, field name) in the order the text lists them.
_LINES = (
    ("system", "system_id"),
    ("report-kind", "report_kind"),
    ("report-digest", "report_digest"),
    ("spec-digest", "spec_digest"),
    ("decision", "decision"),
    ("comment", "comment"),
    ("signed-at", "signed_at"),
    ("run", "run_id"),
    ("approver", "approver_id"),
)
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}


class Statement(BaseModel):
    """What one approver decides about one report in one run, as signed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system_id: str
    report_kind: str
    report_digest: str
    spec_digest: str
    decision: Decision
    comment: str
    signed_at: datetime
    run_id: str
    approver_id: str

    @field_validator("system_id", "report_kind", "report_digest", "spec_digest", "run_id", "approver_id")
    @classmethod
    def _one_token(cls, value: str) -> str:
        if not value or any(character.isspace() for character in value) or not value.isprintable():
            raise ValueError(f"{value!r} must be one token: not empty, no whitespace or control characters")
        return value

    @field_validator("comment")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        return value.strip()

    @field_validator("signed_at")
    @classmethod
    def _utc_whole_seconds(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give a timezone-aware time (UTC)")
        return value.astimezone(UTC).replace(microsecond=0)

    def text(self) -> str:
        """The canonical text: header, then ``key: value`` lines, LF-separated, no trailing newline."""
        return "\n".join([STATEMENT_HEADER, *(_line(key, self._value(field)) for key, field in _LINES)])

    def message(self) -> bytes:
        """The bytes that are signed: :meth:`text` in UTF-8."""
        return self.text().encode("utf-8")

    @classmethod
    def parse(cls, text: str) -> Statement:
        """The statement ``text`` shows; SignatureInvalid if it is not exactly canonical."""
        lines = text.split("\n")
        if lines[0] != STATEMENT_HEADER:
            raise _not_canonical(f"its first line is not {STATEMENT_HEADER!r}")
        if len(lines) != len(_LINES) + 1:
            raise _not_canonical(f"it has {len(lines)} lines, not {len(_LINES) + 1} (a trailing newline?)")
        values = {field: _value_of(line, key) for line, (key, field) in zip(lines[1:], _LINES, strict=True)}
        try:
            statement = cls.model_validate({**values, "signed_at": _parse_time(values["signed_at"])})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise _not_canonical(problems) from exc
        if statement.text() != text:
            raise _not_canonical("it differs from its canonical form (spacing, escaping or comment whitespace)")
        return statement

    def _value(self, field: str) -> str:
        if field == "signed_at":
            return self.signed_at.strftime(_TIME_FORMAT)
        if field == "comment":
            return "".join(_ESCAPES.get(character, character) for character in self.comment)
        return str(getattr(self, field))


def _line(key: str, value: str) -> str:
    return f"{key}: {value}" if value else f"{key}:"


def _value_of(line: str, key: str) -> str:
    if line == f"{key}:":
        return ""
    if not line.startswith(f"{key}: "):
        raise _not_canonical(f"expected the line {key!r} here, found {line[:40]!r}")
    value = line[len(key) + 2 :]
    return _unescape(value) if key == "comment" else value


def _unescape(value: str) -> str:
    out: list[str] = []
    characters = iter(value)
    for character in characters:
        if character != "\\":
            out.append(character)
            continue
        escaped = next(characters, "")
        if escaped not in _UNESCAPES:
            raise _not_canonical(f"the comment has an unknown escape '\\{escaped}' (only \\\\, \\n and \\r)")
        out.append(_UNESCAPES[escaped])
    return "".join(out)


def _parse_time(value: str) -> datetime:
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise _not_canonical(f"signed-at {value!r} is not a UTC time like 2026-12-02T11:50:00Z") from exc


def _not_canonical(reason: str) -> SignatureInvalid:
    return SignatureInvalid(
        f"the signed text is not a canonical sign-off statement: {reason}. Sign exactly the statement "
        "the form shows (UTF-8, LF line ends, no trailing newline)"
    )
