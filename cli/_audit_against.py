"""``cutover audit verify --against FILE``: the ledger's trail compared with an earlier export.

Used by the ``audit verify`` command of :mod:`cli._ledger`. The file is what ``cutover audit
export`` wrote (:mod:`cli._audit_export`), JSON Lines or CSV; only each event's ``seq`` and
``digest`` are read. Every exported event must still be in the ledger with the same digest, so a
trail truncated after the export (even with its head row rewound to match, which the chain walk
alone cannot see) or replaced by another chain is named, and the command exits 1.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cli._console import ExitCode, fail
from cutover.errors import AuditChainBroken
from cutover.ledger import AuditEvent, Ledger

__all__ = ["check_against"]

_BATCH = 1_000


def check_against(ledger: Ledger, path: Path) -> str:
    """Compare the ledger's trail with an export: every exported event must be there, digest unchanged.

    Raises :class:`AuditChainBroken` naming the first exported seq the ledger lost (a trail truncated
    after the export) or holds with another digest (another chain); else a one-line summary.
    """
    exported = _exported_digests(path)
    if not exported:
        raise AuditChainBroken(f"{path} holds no audit events to compare with; export again")
    held = _ledger_digests(ledger, list(exported))
    newest = _newest_seq(ledger)
    missing = [seq for seq in exported if seq not in held]
    if missing:
        raise AuditChainBroken(_missing(path, missing, newest))
    for seq, digest in exported.items():
        if held[seq] != digest:
            raise AuditChainBroken(
                f"the ledger's trail is not the chain exported to {path}: at seq {seq} the ledger has digest "
                f"{held[seq]}, the export {digest}; preserve the database and the export as evidence"
            )
    last = max(exported)
    return f"all {len(exported)} events of {path} (up to seq {last}) are in the ledger unchanged; {newest - last} since"


def _missing(path: Path, missing: list[int], newest: int) -> str:
    span = f"seq {missing[0]}" + (f"..{missing[-1]}" if len(missing) > 1 else "")
    how = "truncated after the export" if missing[0] > newest else "has lost events since the export"
    return (
        f"the audit trail was {how} {path}: the ledger has no event {span} ({len(missing)} exported events gone; "
        f"its newest is seq {newest}); preserve the database and the export as evidence"
    )


def _exported_digests(path: Path) -> dict[int, str]:
    """``{seq: digest}`` of every event in a JSON Lines or CSV export, in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read the export ({exc})", ExitCode.INVALID)
    rows = _jsonl_rows(path, text) if text.lstrip().startswith("{") else csv.DictReader(text.splitlines())
    found: dict[int, str] = {}
    for number, row in enumerate(rows, start=1):
        try:
            found[int(row["seq"])] = str(row["digest"])
        except (KeyError, TypeError, ValueError) as exc:
            fail(f"{path}: event {number} has no seq and digest ({exc}); is it an audit export?", ExitCode.INVALID)
    return found


def _jsonl_rows(path: Path, text: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                fail(f"{path}:{number}: not a JSON object ({exc.msg}); is it an audit export?", ExitCode.INVALID)


def _ledger_digests(ledger: Ledger, seqs: list[int]) -> dict[int, str]:
    held: dict[int, str] = {}
    with ledger.session() as session:
        for start in range(0, len(seqs), _BATCH):
            chunk = seqs[start : start + _BATCH]
            statement = sa.select(AuditEvent.seq, AuditEvent.digest).where(AuditEvent.seq.in_(chunk))
            held.update({seq: digest for seq, digest in session.execute(statement)})
    return held


def _newest_seq(ledger: Ledger) -> int:
    with ledger.session() as session:
        return int(session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0)
