"""Opening the configured ledger and specs, shared by the CLI and the flows."""

from __future__ import annotations

import threading
from pathlib import Path

from cutover import lifecycle
from cutover.errors import UnknownSystem
from cutover.ledger import Ledger, LifecycleState
from cutover.settings import Settings, get_settings
from cutover.spec import Spec
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
    return state
