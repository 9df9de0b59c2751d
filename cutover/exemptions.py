"""Exemptions ruled by experts (clause 一): a system declared unable to migrate, and the panel's ruling.

A department declares a system unable to migrate (disposition ``exempt``, with its reason) in its
plan table or spec; the leading-group office convenes experts and records their ruling with
:func:`rule`: accepted (the system stays off the cloud) or refused (it goes back in the plan, to
migrate). Each ruling is kept (never changed) and audited as ``exemption.ruled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from cutover import audit
from cutover.errors import ExemptionRefused
from cutover.ledger import Disposition, ExemptionDecision, ExemptionRuling, Ledger, System

__all__ = ["Exemption", "exemptions", "rule", "standing_ruling"]


@dataclass(frozen=True)
class Exemption:
    """A system declared unable to migrate (or once declared), its reason and its standing ruling."""

    system: System
    reason: str
    ruling: ExemptionRuling | None


def rule(
    ledger: Ledger,
    system_id: str,
    *,
    decision: ExemptionDecision,
    ruled_on: date,
    panel: list[str],
    document: str,
    actor: str,
) -> ExemptionRuling:
    """Record the panel's ruling; a refused exemption puts the system back in the plan (to migrate).

    Refused (ExemptionRefused) when the system is not declared unable to migrate, an accepted
    ruling stands already, the date is in the future, or the panel or document is missing.
    """
    members = _panel(panel)
    document = document.strip()
    with ledger.session() as session:
        system = ledger.require_system(system_id, session=session)
        _check(ledger, session, system, ruled_on, members, document)
        reason = _reason(ledger, session, system_id)
        ruling = ledger.add_exemption_ruling(
            system_id,
            decision=decision,
            ruled_on=ruled_on,
            panel=members,
            document=document,
            reason=reason,
            recorded_by=actor,
            session=session,
        )
        if decision is ExemptionDecision.REFUSED:
            _back_in_the_plan(ledger, session, system)
        audit.append(
            session,
            actor=actor,
            action="exemption.ruled",
            object=f"system:{system_id}",
            detail={
                "decision": decision.value,
                "ruled_on": ruled_on.isoformat(),
                "panel": members,
                "document": document,
                "reason": reason,
                "disposition": "exempt" if decision is ExemptionDecision.ACCEPTED else "exempt -> migrate",
            },
        )
        return ruling


def _panel(panel: list[str]) -> list[str]:
    members = [name.strip() for name in panel if name.strip()]
    if not members:
        raise ExemptionRefused(
            "the ruling names no panel member: give --panel 'name, name, ...' (the experts who ruled)"
        )
    twice = sorted({m for m in members if members.count(m) > 1})
    if twice:
        raise ExemptionRefused(f"the panel names {', '.join(twice)} more than once: list each expert once")
    return members


def _check(ledger: Ledger, session: Session, system: System, ruled_on: date, members: list[str], document: str) -> None:
    if not document:
        raise ExemptionRefused("the ruling has no document number: give --document (e.g. 青政云认〔2019〕3号)")
    if ruled_on > ledger.now().date():
        raise ExemptionRefused(
            f"the ruling's date {ruled_on.isoformat()} is in the future: give the date the panel ruled"
        )
    standing = standing_ruling(ledger.exemption_rulings(system.id, session=session))
    if system.disposition is not Disposition.EXEMPT:
        after = ""
        if standing is not None and standing.decision is ExemptionDecision.REFUSED:
            after = f"; its exemption was refused on {standing.ruled_on.isoformat()} ({standing.document})"
        raise ExemptionRefused(
            f"system {system.id!r} is not declared unable to migrate (disposition {system.disposition.value}{after}): "
            "the department declares it (处置方式 不迁移 with its reason, in its plan table or spec) before the panel rules"
        )
    if standing is not None and standing.decision is ExemptionDecision.ACCEPTED:
        raise ExemptionRefused(
            f"the exemption of {system.id!r} was accepted already on {standing.ruled_on.isoformat()} "
            f"({standing.document}, panel {', '.join(standing.panel)}); a ruling is never changed"
        )


def _reason(ledger: Ledger, session: Session, system_id: str) -> str:
    roadmap = ledger.get_roadmap(system_id, session=session)
    if roadmap is not None and roadmap.exemption_reason:
        return roadmap.exemption_reason
    entry = ledger.get_plan_entry(system_id, session=session)
    return str((entry.fields if entry is not None else {}).get("reason") or "")


def _back_in_the_plan(ledger: Ledger, session: Session, system: System) -> None:
    """The system is to migrate: its disposition and plan entry say so (its state is kept)."""
    ledger.upsert_system(
        system_id=system.id,
        name=system.name,
        department=system.department,
        disposition=Disposition.MIGRATE,
        spec_digest=system.spec_digest,
        session=session,
    )
    entry = ledger.get_plan_entry(system.id, session=session)
    if entry is not None:
        ledger.set_plan_entry(system.id, {**entry.fields, "disposition": Disposition.MIGRATE.value}, session=session)


def standing_ruling(rulings: list[ExemptionRuling]) -> ExemptionRuling | None:
    """The ruling that stands: the newest recorded (rulings come oldest first)."""
    return rulings[-1] if rulings else None


def exemptions(ledger: Ledger) -> list[Exemption]:
    """Every system declared unable to migrate or ruled on, with its reason and standing ruling."""
    by_system: dict[str, list[ExemptionRuling]] = {}
    for ruling in ledger.exemption_rulings():
        by_system.setdefault(ruling.system_id, []).append(ruling)
    reasons = {r.system_id: r.exemption_reason or "" for r in ledger.list_roadmaps()}
    found = []
    for system in ledger.list_systems():
        rulings = by_system.get(system.id, [])
        if system.disposition is Disposition.EXEMPT or rulings:
            reason = reasons.get(system.id) or (rulings[-1].reason if rulings else "")
            found.append(Exemption(system, reason, standing_ruling(rulings)))
    return found
