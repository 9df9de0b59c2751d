"""Opening the configured ledger and specs, shared by the CLI and the flows."""

from __future__ import annotations

import threading
from pathlib import Path

from cutover import lifecycle
from cutover.errors import UnknownSystem
from cutover.ledger import ADAPTATION_ITEMS, Ledger, LifecycleState
from cutover.plan import spec_statuses
from cutover.settings import Settings, get_settings
from cutover.spec import Disposition, Spec
from cutover.spec_loader import load, spec_files

_MIGRATED: set[str] = set()
_GUARD = threading.Lock()


def open_ledger(settings: Settings | None = None) -> Ledger:
    """The configured ledger, migrated to the newest schema (once per process and URL)."""
    settings = settings or get_settings()
    ledger = Ledger.from_settings(settings)
    with _GUARD:
        if ledger.safe_url not in _MIGRATED:
            ledger.migrate()
            _MIGRATED.add(ledger.safe_url)
    return ledger


def find_spec(system_id: str, settings: Settings | None = None) -> tuple[Path, Spec]:
    """The spec file of ``system_id`` in the specs directory, validated."""
    settings = settings or get_settings()
    for path in spec_files([settings.specs_dir]):
        spec = load(path)
        if spec.system.id == system_id:
            return path, spec
    raise UnknownSystem(
        f"no spec for system {system_id!r} in {settings.specs_dir.resolve()}; "
        "check the id, or set CUTOVER_SPECS_DIR to the directory holding its YAML file"
    )


def register(ledger: Ledger, spec: Spec, *, actor: str, algorithm: str | None = None) -> LifecycleState:
    """Record the system (idempotently) with its plan entry; returns its lifecycle state.

    A spec whose digest differs from the registered one sends a tested, reported or signed
    system back to ``planned``, voiding its report and signatures (see
    :func:`cutover.lifecycle.register_system`): whichever command registers the edited spec first.
    """
    state = lifecycle.register_system(
        ledger,
        system_id=spec.system.id,
        name=spec.system.name,
        department=spec.system.department,
        disposition=spec.system.disposition.value,
        spec_digest=spec.digest(ledger.digest),
        actor=actor,
    )
    ledger.set_plan_entry(spec.system.id, spec.system.model_dump(mode="json", by_alias=True))
    _spec_takes_over_roadmap(ledger, spec)
    return state


def _spec_takes_over_roadmap(ledger: Ledger, spec: Spec) -> None:
    """The spec's cutover date, operator and exemption reason on the system's roadmap (made if missing).

    A roadmap from a plan table keeps its other dates and statuses; a new one has the network move
    and each adaptation item the spec names as not started, the rest not needed.
    """
    system = spec.system
    fields: dict[str, object] = {
        "cutover_on": system.planned_date,
        "operator": system.hosting.operator,
        "exemption_reason": system.reason if system.disposition is Disposition.EXEMPT else None,
    }
    if ledger.get_roadmap(system.id) is None:
        fields |= dict(zip(("network_move", *ADAPTATION_ITEMS), spec_statuses(system), strict=True))
    ledger.set_roadmap(system.id, fields, source="spec")
