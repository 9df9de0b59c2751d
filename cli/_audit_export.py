"""``cutover audit export``: the audit trail as a file an auditor keeps and checks without our code.

Attached to the ``audit`` group of :mod:`cli._ledger` when this module is imported (by
:mod:`cli`). Every event is written oldest first with ``seq``, ``at``, ``actor``, ``action``,
``object``, ``outcome``, ``detail`` (JSON), ``prev_digest`` and ``digest``, as JSON Lines (one
object per line) or CSV (``detail`` as a JSON string). To check the file offline: for each event,
``digest`` is ``<algorithm>:<hex>`` of the canonical JSON (keys sorted, no spaces, UTF-8, Chinese
kept) of ``{seq, at, actor, action, object, outcome, detail, prev_digest}``, hashed with the named
algorithm (SM3 by default), and each event's ``prev_digest`` is the ``digest`` of the event before
it. The command also prints the chain head (newest seq and digest), to note down elsewhere; a later
``cutover audit verify`` that finds the chain broken is compared with this file.

With ``--system S`` only the events about S (``system:S``, its runs' steps, and events whose detail
names it) are written: each event still verifies alone, but the links between them have gaps.

``cutover audit verify --against FILE`` (:func:`cli._audit_against.check_against`) compares the ledger with such a
file: every exported event must still be in the ledger with the same digest, so a trail truncated
after the export (even with its head row rewound to match) or replaced by another chain is named.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import sqlalchemy as sa
import typer

from cli._console import console, err_console
from cli._ledger import audit_app
from cutover.ledger import AuditChainHead, AuditEvent, AuditOutcome, Ledger
from cutover.runtime import open_ledger

__all__ = ["ExportFormat", "export"]

FIELDS = ("seq", "at", "actor", "action", "object", "outcome", "detail", "prev_digest", "digest")
_BATCH = 1_000


class ExportFormat(StrEnum):
    """The file formats of ``cutover audit export``."""

    JSONL = "jsonl"
    CSV = "csv"


@audit_app.command("export")
def export(
    system: Annotated[str | None, typer.Option(help="Only the events about this system.")] = None,
    out: Annotated[Path | None, typer.Option(help="The file to write (default: standard output).")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = ExportFormat.JSONL,
) -> None:
    """Write every audit event (seq, at, actor, action, object, outcome, detail, digests) for an auditor."""
    ledger = open_ledger()
    if out is None:
        written = _write(ledger, sys.stdout, fmt, system)
        err_console.print(_summary(ledger, written, "standard output"), markup=False, soft_wrap=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as file:
        written = _write(ledger, file, fmt, system)
    console.print(_summary(ledger, written, str(out)), markup=False, soft_wrap=True)


def _write(ledger: Ledger, file: TextIO, fmt: ExportFormat, system: str | None) -> int:
    rows = (_row(event) for event in _events(ledger, system))
    if fmt is ExportFormat.CSV:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        written = 0
        for row in rows:
            writer.writerow({**row, "detail": _json(row["detail"])})
            written += 1
        return written
    written = 0
    for row in rows:
        file.write(_json(row) + "\n")
        written += 1
    return written


def _events(ledger: Ledger, system: str | None) -> Iterator[AuditEvent]:
    """Every event, oldest first, read in batches (the trail may be long)."""
    runs = {run.id for run in ledger.list_runs(system)} if system is not None else set()
    after = -1
    while True:
        with ledger.session() as session:
            statement = sa.select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(_BATCH)
            batch = list(session.scalars(statement))
        if not batch:
            return
        after = batch[-1].seq
        yield from (event for event in batch if system is None or _about(event, system, runs))


def _about(event: AuditEvent, system: str, runs: set[str]) -> bool:
    if event.object == f"system:{system}" or event.detail.get("system_id") == system:
        return True
    return event.object.startswith("run:") and event.object[4:].split("/", 1)[0] in runs


def _row(event: AuditEvent) -> dict[str, Any]:
    """The event as its digest was computed (see :func:`cutover.audit.event_digest`)."""
    return {
        "seq": event.seq,
        "at": event.at.astimezone(UTC).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "object": event.object,
        "outcome": AuditOutcome(event.outcome).value,
        "detail": event.detail,
        "prev_digest": event.prev_digest,
        "digest": event.digest,
    }


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _summary(ledger: Ledger, written: int, where: str) -> str:
    with ledger.session() as session:
        head = session.scalars(sa.select(AuditChainHead)).first()
    if head is None or not head.seq:
        return f"wrote {written} audit events to {where}; the chain is empty"
    return (
        f"wrote {written} audit events to {where}; chain head seq {head.seq}, digest {head.digest} "
        "(note it down outside the ledger)"
    )
