"""Exemptions ruled by experts: accepted stays off the cloud, refused goes back in the plan; each audited."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from cutover import audit, exemptions
from cutover.errors import ExemptionRefused
from cutover.ledger import AuditEvent, Disposition, ExemptionDecision, Ledger
from cutover.plan_import import import_plan
from tests.office._tables import row, unique, write_csv

REASON = "涉及专用硬件加密卡，政务云暂不支持"


def _declared(ledger: Ledger, tmp_path: Path) -> str:
    """A system its department declares unable to migrate, from a plan table."""
    system_id = unique("exempt")
    cells = row(system_id, 处置方式="不迁移（报专家认定）", 不迁移原因=REASON)
    import_plan(ledger, write_csv(tmp_path / f"{system_id}.csv", [cells]), actor="test")
    return system_id


def _rule(ledger: Ledger, system_id: str, decision: ExemptionDecision, **overrides: object) -> object:
    arguments: dict[str, object] = {
        "decision": decision,
        "ruled_on": date(2019, 3, 1),
        "panel": ["李专家", "王专家", "张专家"],
        "document": "青政云认〔2019〕3号",
        "actor": "cli:office",
    }
    return exemptions.rule(ledger, system_id, **(arguments | overrides))  # type: ignore[arg-type]


def _ruled_events(ledger: Ledger, system_id: str) -> list[AuditEvent]:
    with ledger.session() as s:
        statement = sa.select(AuditEvent).where(
            AuditEvent.action == "exemption.ruled", AuditEvent.object == f"system:{system_id}"
        )
        return list(s.scalars(statement))


def test_an_accepted_exemption_keeps_the_system_off_the_cloud_and_is_audited(ledger: Ledger, tmp_path: Path) -> None:
    system_id = _declared(ledger, tmp_path)

    _rule(ledger, system_id, ExemptionDecision.ACCEPTED)

    assert ledger.require_system(system_id).disposition is Disposition.EXEMPT
    [found] = [e for e in exemptions.exemptions(ledger) if e.system.id == system_id]
    assert found.reason == REASON and found.ruling is not None
    assert found.ruling.decision is ExemptionDecision.ACCEPTED and found.ruling.panel == ["李专家", "王专家", "张专家"]
    [event] = _ruled_events(ledger, system_id)
    assert event.actor == "cli:office" and event.detail["decision"] == "accepted"
    assert event.detail["document"] == "青政云认〔2019〕3号" and event.detail["reason"] == REASON


def test_a_refused_exemption_puts_the_system_back_in_the_plan(ledger: Ledger, tmp_path: Path) -> None:
    system_id = _declared(ledger, tmp_path)

    _rule(ledger, system_id, ExemptionDecision.REFUSED)

    assert ledger.require_system(system_id).disposition is Disposition.MIGRATE
    entry = ledger.get_plan_entry(system_id)
    assert entry is not None and entry.fields["disposition"] == "migrate"
    [event] = _ruled_events(ledger, system_id)
    assert event.detail["decision"] == "refused" and event.detail["disposition"] == "exempt -> migrate"
    with pytest.raises(ExemptionRefused, match=r"not declared unable to migrate .*refused on 2019-03-01"):
        _rule(ledger, system_id, ExemptionDecision.ACCEPTED)


def test_an_accepted_ruling_is_never_changed(ledger: Ledger, tmp_path: Path) -> None:
    system_id = _declared(ledger, tmp_path)
    _rule(ledger, system_id, ExemptionDecision.ACCEPTED)

    with pytest.raises(ExemptionRefused, match="accepted already on 2019-03-01"):
        _rule(ledger, system_id, ExemptionDecision.REFUSED)

    assert len(_ruled_events(ledger, system_id)) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"panel": [" ", ""]}, "names no panel member"),
        ({"panel": ["李专家", "李专家"]}, "more than once"),
        ({"document": " "}, "no document number"),
        ({"ruled_on": date(2999, 1, 1)}, "is in the future"),
    ],
    ids=["no panel", "a member twice", "no document", "future date"],
)
def test_an_incomplete_ruling_is_refused_and_nothing_is_recorded(
    ledger: Ledger, tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    system_id = _declared(ledger, tmp_path)

    with pytest.raises(ExemptionRefused, match=message):
        _rule(ledger, system_id, ExemptionDecision.ACCEPTED, **overrides)

    assert ledger.exemption_rulings(system_id) == [] and _ruled_events(ledger, system_id) == []


def test_a_system_to_migrate_cannot_be_ruled_exempt(ledger: Ledger, tmp_path: Path) -> None:
    system_id = unique("migrate")
    import_plan(ledger, write_csv(tmp_path / "plan.csv", [row(system_id)]), actor="test")

    with pytest.raises(ExemptionRefused, match="declares it"):
        _rule(ledger, system_id, ExemptionDecision.ACCEPTED)


def test_the_audit_chain_verifies_after_rulings(isolated_ledger: Ledger, tmp_path: Path) -> None:
    accepted, refused = _declared(isolated_ledger, tmp_path), _declared(isolated_ledger, tmp_path)
    _rule(isolated_ledger, accepted, ExemptionDecision.ACCEPTED)
    _rule(isolated_ledger, refused, ExemptionDecision.REFUSED)

    assert audit.verify(isolated_ledger).ok
